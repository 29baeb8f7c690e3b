"""Upload throughput of the origin: objects per second it accepts, with payload bytes in the
database column and in the file store.

For each store (`payload_store = "database"`, then `"files"`), a fresh `outpost origin` on an
empty SQLite database (uvicorn, 1 worker, a writer token) in a temporary directory; for each
size (`--sizes`, 1 MiB and 10 MiB), `--clients` (2) clients upload new random objects
(`POST /v1/payloads`) for `--seconds` (5), each waiting for its answer before the next. Prints
objects/s and MB/s per store and size; every answer must be a 201 naming the object's hash.

Exit status: 0 when it ran and every upload was accepted; 1 when one was not; 2 when the origin
did not start.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
from harness import HOST, clean_environment, free_port, outpost_command
from hit_throughput import Server, start_server, stop_server
from wrk import BenchmarkError

from outpost.config import parse_size

TOKEN = "bench-writer-token"
STORES = ("database", "files")


def parse_sizes(text: str) -> list[int]:
    return [parse_size(item.strip(), "--sizes") for item in text.split(",") if item.strip()]


async def upload_for(base: str, size: int, seconds: float, clients: int) -> tuple[int, float]:
    """Uploads accepted in `seconds` by `clients` clients; (count, elapsed)."""
    headers = {"authorization": f"Bearer {TOKEN}"}
    deadline = time.monotonic() + seconds
    count = 0

    async def client(session: aiohttp.ClientSession) -> None:
        nonlocal count
        while time.monotonic() < deadline:
            data = os.urandom(size)
            async with session.post(f"{base}/v1/payloads", data=data, headers=headers) as answer:
                document = await answer.json()
            if answer.status != 201 or document.get("hash") != hashlib.sha256(data).hexdigest():
                raise BenchmarkError(f"upload answered {answer.status}: {document}")
            count += 1

    started = time.monotonic()
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        await asyncio.gather(*(client(session) for _ in range(clients)))
    return count, time.monotonic() - started


def start_origin(work: Path, store: str) -> Server:
    tokens = work / "tokens.toml"
    tokens.write_text(
        f'[[token]]\nname = "bench"\nrole = "writer"\ntags = ["*"]\ntoken = "{TOKEN}"\n'
    )
    config = work / "origin.toml"
    config.write_text(
        f'[origin]\npayload_store = "{store}"\npayload_dir = "{work / "payloads"}"\n'
        f'tokens_file = "{tokens}"\n'
    )
    port = free_port()
    db = f"sqlite:///{work / 'outpost.sqlite'}"
    command = [*outpost_command(), "origin", "--config", str(config), "--db", db]
    server = start_server(
        "origin", [*command, "--host", HOST, "--port", str(port)], port, work / "origin.log", None
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        server.check_alive()
        try:
            import urllib.request

            with urllib.request.urlopen(f"{server.base}/_outpost/healthz", timeout=1):
                return server
        except OSError:
            time.sleep(0.1)
    stop_server(server)
    raise BenchmarkError(f"the origin did not start:\n{server.log_tail()}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1MiB,10MiB", help="object sizes (1MiB,10MiB)")
    parser.add_argument("--seconds", type=float, default=5.0, help="seconds per size (5)")
    parser.add_argument("--clients", type=int, default=2, help="concurrent uploaders (2)")
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    args = parser.parse_args()
    os.environ.clear()
    os.environ.update(clean_environment())
    results: dict[str, dict[str, dict[str, float]]] = {}
    for store in STORES:
        with tempfile.TemporaryDirectory(prefix=f"outpost-uploads-{store}-") as tmp:
            try:
                origin = start_origin(Path(tmp), store)
            except BenchmarkError as exc:
                print(f"origin_uploads: {exc}", file=sys.stderr)
                return 2
            try:
                for size in parse_sizes(args.sizes):
                    count, elapsed = asyncio.run(
                        upload_for(origin.base, size, args.seconds, args.clients)
                    )
                    row = {
                        "objects_per_s": count / elapsed,
                        "mb_per_s": count * size / elapsed / 1e6,
                    }
                    results.setdefault(store, {})[str(size)] = row
                    print(
                        f"{store:8} {size / 2**20:6g} MiB: {row['objects_per_s']:6.1f} objects/s "
                        f"({row['mb_per_s']:.0f} MB/s)",
                        file=sys.stderr,
                    )
            except BenchmarkError as exc:
                print(f"origin_uploads: {exc}", file=sys.stderr)
                return 1
            finally:
                stop_server(origin)
    if args.json:
        print(json.dumps(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
