"""Tree transfer: a large payload through origin → site → node, cold, against the origin direct.

Set-up, in a temporary directory: `outpost origin` on an empty SQLite database with a writer
token, a site `outpost proxy` in front of it and a node `outpost proxy` in front of the site,
each on its defaults (uvicorn, 1 worker). For every run a fresh payload of `--size-mib` (10)
random bytes is uploaded, so each run is cold in both caches.

Per run, two scenarios, each first direct from the origin (three times: the origin keeps no
cache, so the median of three reads is its time), then once through the node, cold:

- `1 client`: one GET; the time from sending it to its last byte (TTLB);
- `50 clients` (`--clients`): that many GETs at once, one connection each; the time from the
  first send to the last byte of the last answer.

Every body is checked against its SHA-256 name. The figure is the median over `--runs` (3) of
`through the node / direct`, per scenario; the goal of the miss-path issue is at most 1.3. A
store-then-serve tree pays a whole transfer per tier; a relaying tree (`relay_from_bytes`)
pays each tier's processing time. The origin's request count for each payload is printed too
(it must be 1: the site fetched it once for every node request).

Exit status: 0 when it ran and every body was right; 1 when a body was wrong or missing; 2 when
it could not run.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import statistics
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from harness import HOST, clean_environment, free_port, outpost_command
from hit_throughput import Server, start_server, stop_server
from wrk import BenchmarkError

from outpost.accesslog import FLUSH_SECONDS

TOKEN = "bench-writer-token"


@dataclass
class Tree:
    origin: Server
    site: Server
    node: Server


async def get(base: str, path: str) -> tuple[float, bytes]:
    """One GET over its own connection; (seconds to last byte, body)."""
    host, port = base.removeprefix("http://").split(":")
    started = time.perf_counter()
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    try:
        body = await reader.readexactly(length)
    except asyncio.IncompleteReadError as exc:
        raise BenchmarkError(
            f"GET {base}{path}: cut short after {len(exc.partial)} of {length} bytes"
        ) from None
    elapsed = time.perf_counter() - started
    writer.close()
    if status != 200:
        raise BenchmarkError(f"GET {base}{path}: status {status}")
    return elapsed, body


async def all_at_once(base: str, path: str, clients: int, digest: str) -> float:
    started = time.perf_counter()
    answers = await asyncio.gather(*(get(base, path) for _ in range(clients)))
    elapsed = time.perf_counter() - started
    for _, body in answers:
        if hashlib.sha256(body).hexdigest() != digest:
            raise BenchmarkError(f"{base}{path}: a body does not hash to its name")
    return elapsed


def upload(origin: str, data: bytes) -> str:
    request = urllib.request.Request(
        f"{origin}/v1/payloads", data=data, headers={"authorization": f"Bearer {TOKEN}"}
    )
    with urllib.request.urlopen(request, timeout=60) as answer:
        document = json.loads(answer.read())
    digest = hashlib.sha256(data).hexdigest()
    if digest not in json.dumps(document):
        raise BenchmarkError(f"upload answered {document}")
    return digest


def origin_requests(origin: Server, digest: str, at_least: int) -> int:
    """How many GETs of the payload reached the origin (from its access log, which is written
    in batches every `FLUSH_SECONDS`: read until it holds `at_least` and stops growing)."""
    counted, deadline = -1, time.monotonic() + 5
    while time.monotonic() < deadline:
        log = origin.logs[0].read_text(errors="replace")
        count = sum(
            1 for line in log.splitlines() if f"/v1/payloads/{digest}" in line and "GET" in line
        )
        if count >= at_least and count == counted:
            return count
        counted = count
        time.sleep(FLUSH_SECONDS + 0.05)
    return counted


def start_tree(workdir: Path, startup_timeout: float, relay_from: str | None) -> Tree:
    tokens = workdir / "tokens.toml"
    tokens.write_text(
        f'[[token]]\nname = "bench"\nrole = "writer"\ntags = ["*"]\ntoken = "{TOKEN}"\n'
    )
    db = f"sqlite:///{workdir / 'outpost.sqlite'}"
    ports = [free_port() for _ in range(3)]
    proxy_config: list[str] = []
    if relay_from is not None:
        config = workdir / "proxy.toml"
        config.write_text(f'[proxy]\nrelay_from_bytes = "{relay_from}"\n')
        proxy_config = ["--config", str(config)]
    servers: list[Server] = []
    commands = [
        ("origin", ["origin", "--db", db, "--tokens-file", str(tokens), "--log-level", "info"]),
        (
            "site",
            ["proxy", *proxy_config, "--name", "site", "--upstream", f"http://{HOST}:{ports[0]}"],
        ),
        (
            "node",
            ["proxy", *proxy_config, "--name", "node", "--upstream", f"http://{HOST}:{ports[1]}"],
        ),
    ]
    try:
        for (name, args), port in zip(commands, ports, strict=True):
            command = [*outpost_command(), *args, "--host", HOST, "--port", str(port)]
            server = start_server(name, command, port, workdir / f"{name}.log", None)
            servers.append(server)
            wait_ready(server, startup_timeout)
    except BaseException:
        for server in servers:
            stop_server(server)
        raise
    return Tree(*servers)


def wait_ready(server: Server, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    path = "/_outpost/healthz"
    while time.monotonic() < deadline:
        server.check_alive()
        try:
            with urllib.request.urlopen(server.base + path, timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise BenchmarkError(f"{server.name} did not start in {timeout} s:\n{server.log_tail()}")


def measure(tree: Tree, runs: int, size: int, clients: int, quiet: bool) -> dict[str, object]:
    ratios: dict[str, list[float]] = {"1 client": [], f"{clients} clients": []}
    seconds: dict[str, list[tuple[float, float]]] = {key: [] for key in ratios}
    counts: list[int] = []
    for run in range(runs):
        for scenario, n in (("1 client", 1), (f"{clients} clients", clients)):
            digest = upload(tree.origin.base, os.urandom(size))
            path = f"/v1/payloads/{digest}"
            # the origin keeps no cache: each direct read is the same work, so take the median
            # of three; each read through the tree must be cold, so there is one
            direct = statistics.median(
                asyncio.run(all_at_once(tree.origin.base, path, n, digest)) for _ in range(3)
            )
            through = asyncio.run(all_at_once(tree.node.base, path, n, digest))
            ratios[scenario].append(through / direct)
            seconds[scenario].append((direct, through))
            direct_gets = 3 * n  # aside: only the tree's own requests count
            counts.append(origin_requests(tree.origin, digest, direct_gets + 1) - direct_gets)
            if not quiet:
                print(
                    f"run {run + 1} {scenario}: direct {direct * 1000:.0f} ms, "
                    f"through the node {through * 1000:.0f} ms, ratio {through / direct:.2f}",
                    file=sys.stderr,
                )
    return {
        "size_bytes": size,
        "median_ratio": {k: statistics.median(v) for k, v in ratios.items()},
        "seconds": seconds,
        "origin_requests_per_payload_through_the_tree": sorted(set(counts)),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=float, default=10.0, help="payload size (10)")
    parser.add_argument("--clients", type=int, default=50, help="concurrent clients (50)")
    parser.add_argument("--runs", type=int, default=3, help="runs (3)")
    parser.add_argument(
        "--relay-from",
        help="the proxies' relay_from_bytes (e.g. 256KiB, 0 for off); their default if not given",
    )
    parser.add_argument("--startup-timeout", type=float, default=30.0)
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    args = parser.parse_args()
    os.environ.clear()
    os.environ.update(clean_environment())
    with tempfile.TemporaryDirectory(prefix="outpost-tree-transfer-") as tmp:
        try:
            tree = start_tree(Path(tmp), args.startup_timeout, args.relay_from)
        except BenchmarkError as exc:
            print(f"tree_transfer: {exc}", file=sys.stderr)
            return 2
        try:
            result = measure(
                tree, args.runs, int(args.size_mib * 1024 * 1024), args.clients, args.quiet
            )
        except BenchmarkError as exc:
            print(f"tree_transfer: {exc}", file=sys.stderr)
            for server in (tree.site, tree.node):
                print(f"--- {server.name}'s log:\n{server.log_tail()}", file=sys.stderr)
            return 1
        finally:
            for server in (tree.node, tree.site, tree.origin):
                stop_server(server)
    if args.json:
        print(json.dumps(result))
    else:
        print(f"payload {result['size_bytes']} bytes, median of {args.runs} runs")
        for scenario, ratio in result["median_ratio"].items():  # type: ignore[attr-defined]
            print(f"  {scenario}: through origin → site → node / direct = {ratio:.2f}")
        counts = result["origin_requests_per_payload_through_the_tree"]
        print(f"  origin requests per payload via the tree: {counts}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
