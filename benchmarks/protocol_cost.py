"""CPU time of one plain hit inside the proxy's HTTP protocol (`proxy.protocol.HitProtocol`),
without sockets, wrk or a second process: what a change to the protocol adds per request,
measured apart from this VM's drift between wrk runs.

A ProxyApp is filled with one 1 KiB answer (its upstream an ASGI app in process), then
a HitProtocol on a real uvloop loop, connected to a transport that only counts what is written,
is fed `--requests` keep-alive GETs of it, one read each, as wrk sends them. Prints the median
and the least over `--rounds` of the microseconds per request (process CPU time; on a shared VM
the least is the steadier figure). Run it with PYTHONPATH at an
older tree to measure that tree's protocol.

    .venv/bin/python benchmarks/protocol_cost.py [--requests 200000] [--rounds 7]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import statistics
import time
from collections.abc import AsyncIterator
from typing import Any

import uvloop
from uvicorn.config import Config
from uvicorn.server import ServerState

from proxy.app import create_app
from proxy.http_client import RawResponse
from proxy.protocol import HitProtocol
from proxy.settings import ProxySettings

BODY = b"x" * 1024
PATH = b"/v1/payloads/" + hashlib.sha256(BODY).hexdigest().encode()  # the proxy checks it
REQUEST = b"GET " + PATH + b" HTTP/1.1\r\nHost: 127.0.0.1:8081\r\n\r\n"


class CountingTransport(asyncio.Transport):
    """Accepts writes and counts their bytes: the socket left out."""

    def __init__(self) -> None:
        super().__init__()
        self.written = 0

    def write(self, data: Any) -> None:
        self.written += len(data)

    def writelines(self, list_of_data: Any) -> None:
        self.written += sum(len(d) for d in list_of_data)

    def is_closing(self) -> bool:
        return False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 8081)}.get(
            name, default
        )

    def close(self) -> None:
        pass


class OneAnswer:
    """An upstream client whose every answer is one immutable 1 KiB body (no sockets)."""

    async def send(self, *request: object) -> RawResponse:
        headers = [(b"cache-control", b"public, max-age=31536000, immutable")]
        return RawResponse(200, headers, _Chunks(), len(BODY))

    async def aclose(self) -> None:
        pass


class _Chunks:
    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield BODY

    async def aclose(self) -> None:
        pass


async def measure(requests: int, rounds: int) -> list[float]:
    settings = ProxySettings(name="bench", upstreams=("http://origin.test",))
    app = create_app(settings, upstream_client=OneAnswer())
    await app.start()
    config = Config(app=app, http=HitProtocol, timeout_keep_alive=120, access_log=False)
    config.load()
    protocol = HitProtocol(config=config, server_state=ServerState(), app_state={})
    transport = CountingTransport()
    protocol.connection_made(transport)
    protocol.data_received(REQUEST)  # the miss that stores the answer
    for _ in range(500):
        if transport.written >= 1024:
            break
        await asyncio.sleep(0.01)
    else:
        raise SystemExit("the miss was not answered in 5 s")
    await asyncio.sleep(0.1)
    figures = []
    for _ in range(rounds):
        before, started = transport.written, time.process_time()
        for i in range(requests):
            protocol.data_received(REQUEST)
            if i % 1000 == 0:
                await asyncio.sleep(0)  # let the loop drop cancelled keep-alive timers
        figures.append((time.process_time() - started) / requests * 1e6)
        assert transport.written - before >= requests * 1024, "not answered as hits"
    await app.stop()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    figures = uvloop.run(measure(args.requests, args.rounds))
    shown = " ".join(f"{f:.2f}" for f in figures)
    median, least = statistics.median(figures), min(figures)
    print(f"hit in the protocol: median {median:.2f}, min {least:.2f} us/request ({shown})")


if __name__ == "__main__":
    main()
