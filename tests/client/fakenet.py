"""A fake network for client tests: endpoints that answer, refuse, time out, fail or corrupt.

`Network.transport()` is an `httpx.MockTransport` for both the sync and the async client; each
base URL gets a behaviour, and `network.log` records every GET in order as `base + path`.
Tests import it as `client.fakenet` (`tests/` is on the path).
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
import orjson

GT = "OUTPOST_TEST_V1"
PAYLOADS = {
    hashlib.sha256(body).hexdigest(): body
    for body in (b"ecal pedestals", b"hcal gains", b"tracker alignment", b"beam spot")
}
NODE, SITE, ORIGIN = "http://node:8081", "http://site:8080", "http://origin:8000"

Behaviour = Callable[[httpx.Request], httpx.Response]


def record(name: str, digest: str | None, **fields: object) -> dict[str, object]:
    return {
        "record": name,
        "label": "",
        "tag": f"{name}_v1",
        "time_type": "run",
        "channel": 0,
        "since": 1,
        "until": None,
        "payload": digest,
        "size": None if digest is None else len(PAYLOADS[digest]),
        **fields,
    }


def resolve_answer(run: int = 1, lumi: int = 1, globaltag: str = GT) -> dict[str, object]:
    digests = list(PAYLOADS)
    records = [record(f"Rcd{i}", d) for i, d in enumerate(digests)]
    records.append(record("Shared", digests[0]))  # two records, one payload
    records.append(record("Empty", None))  # no IOV covers this run
    return {
        "globaltag": globaltag,
        "run": run,
        "lumi": lumi,
        "time": None,
        "snapshot": None,
        "records": records,
    }


def json_response(status: int, document: object) -> httpx.Response:
    return httpx.Response(status, content=orjson.dumps(document))


def error(status: int, error: str, detail: str, accepted: object = None) -> httpx.Response:
    return json_response(status, {"error": error, "detail": detail, "accepted": accepted})


def serve(request: httpx.Request) -> httpx.Response:
    """An origin (or a healthy proxy in front of one) over `GT` and `PAYLOADS`."""
    path = request.url.path
    parts = path[path.index("/v1/") :].split("/")  # a base URL may have a path prefix
    if parts[2] == "resolve":
        if parts[3] != GT:
            return error(404, "not found", f"global tag {parts[3]!r} does not exist")
        lumi = int(request.url.params.get("lumi", "1"))
        return json_response(200, resolve_answer(int(request.url.params["run"]), lumi))
    if parts[2] == "payloads" and parts[3] in PAYLOADS:
        return httpx.Response(200, content=PAYLOADS[parts[3]])
    return error(404, "not found", "no such payload")


def refuse(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("[Errno 111] Connection refused", request=request)


def time_out(request: httpx.Request) -> httpx.Response:
    raise httpx.ReadTimeout("timed out", request=request)


def status(code: int) -> Behaviour:
    return lambda request: error(code, "bad gateway", "every upstream failed")


def without(digest: str) -> Behaviour:
    """Serves everything but the payload `digest`, which it answers 404."""

    def behave(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith(digest):
            return error(404, "not found", "x")
        return serve(request)

    return behave


def corrupt(request: httpx.Request) -> httpx.Response:
    if "/v1/payloads/" in request.url.path:
        return httpx.Response(200, content=b"these are not the bytes you are looking for")
    return serve(request)


@dataclass
class Network:
    behaviours: dict[str, Behaviour] = field(default_factory=dict)
    log: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def handle(self, request: httpx.Request) -> httpx.Response:
        base = f"{request.url.scheme}://{request.url.host}:{request.url.port}"
        with self.lock:
            self.log.append(base + request.url.raw_path.decode())
        return self.behaviours.get(base, refuse)(request)

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def hosts(self) -> list[str]:
        """Which endpoint each GET went to, in order."""
        return [url.split("/v1/")[0] for url in self.log]


@dataclass
class Clock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now
