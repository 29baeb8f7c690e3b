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

The same two tiers are built of each peer found (`--peers`: squid, varnish and nginx, each as
in `cold_stampede.py`, the node's parent being the site's), and every run reads its payload
through each tree once, cold, in an order that rotates from run to run. The peers relay without
checking what they relay; Outpost's tiers each hash the payload against its name.

Every body is checked against its SHA-256 name. The figure is the median over `--runs` (3) of
`through the node / direct`, per tree and scenario; the goal of the miss-path issue is at most
1.3 for Outpost. A store-then-serve tree pays a whole transfer per tier; a relaying tree
(`relay_from_bytes`) pays each tier's processing time. Also printed, per tree: the origin's
request count for each payload (it must be 1: the site fetched it once for every node request)
and the CPU time its two tiers spent per transfer (from /proc), which on a machine with fewer
cores than busy processes is what the time through the tree cannot go below.

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
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cold_stampede import start_peer_cache
from harness import HOST, clean_environment, free_port, outpost_command
from hit_throughput import Server, group_cpu_seconds, start_server, stop_server
from wrk import BenchmarkError

from loadtest.peers import PeerMissing
from outpost.accesslog import FLUSH_SECONDS

TOKEN = "bench-writer-token"


PEERS = ("squid", "varnish", "nginx")


@dataclass
class Tree:
    """Two tiers of one cache: `node` in front of `site` in front of the origin."""

    name: str
    site: Server
    node: Server

    def cpu_seconds(self) -> float:
        return sum(group_cpu_seconds(s.process.pid) for s in (self.site, self.node))


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


def start_origin(workdir: Path, startup_timeout: float) -> Server:
    tokens = workdir / "tokens.toml"
    tokens.write_text(
        f'[[token]]\nname = "bench"\nrole = "writer"\ntags = ["*"]\ntoken = "{TOKEN}"\n'
    )
    db = f"sqlite:///{workdir / 'outpost.sqlite'}"
    port = free_port()
    command = [*outpost_command(), "origin", "--db", db, "--tokens-file", str(tokens)]
    command += ["--log-level", "info", "--host", HOST, "--port", str(port)]
    origin = start_server("origin", command, port, workdir / "origin.log", None)
    try:
        wait_ready(origin, startup_timeout, "/_outpost/healthz")
    except BaseException:
        stop_server(origin)
        raise
    return origin


def start_tier(name: str, tier: str, workdir: Path, parent_port: int, config: list[str]) -> Server:
    """One tier of cache `name` on a free port in front of HOST:`parent_port`."""
    port = free_port()
    if name == "outpost":
        command = [*outpost_command(), "proxy", *config, "--name", tier, "--host", HOST]
        command += ["--port", str(port), "--upstream", f"http://{HOST}:{parent_port}"]
        return start_server(f"outpost {tier}", command, port, workdir / f"outpost-{tier}.log", None)
    work = workdir / f"{name}-{tier}"
    return start_peer_cache(name, work.name, work, port=port, parent_port=parent_port, pin=None)


def start_tree(
    name: str, workdir: Path, origin: Server, startup_timeout: float, relay_from: str | None
) -> Tree:
    """Site and node of cache `name`, each on its defaults (Outpost's `relay_from_bytes` aside)."""
    config: list[str] = []
    if name == "outpost" and relay_from is not None:
        path = workdir / "proxy.toml"
        path.write_text(f'[proxy]\nrelay_from_bytes = "{relay_from}"\n')
        config = ["--config", str(path)]
    ready = "/_outpost/healthz" if name == "outpost" else "/v1/payloads"
    tiers: list[Server] = []
    try:
        parent = origin
        for tier in ("site", "node"):
            parent_port = int(parent.base.rsplit(":", 1)[1])
            parent = start_tier(name, tier, workdir, parent_port, config)
            tiers.append(parent)
            wait_ready(parent, startup_timeout, ready)
    except BaseException:
        for server in tiers:
            stop_server(server)
        raise
    return Tree(name, *tiers)


def wait_ready(server: Server, timeout: float, path: str) -> None:
    """Until `server` answers `path` at all (any status: a peer passes the origin's on)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        server.check_alive()
        try:
            with urllib.request.urlopen(server.base + path, timeout=1):
                return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.1)
    raise BenchmarkError(f"{server.name} did not start in {timeout} s:\n{server.log_tail()}")


def measure(
    origin: Server, trees: list[Tree], runs: int, size: int, clients: int, quiet: bool
) -> dict[str, object]:
    scenarios = (("1 client", 1), (f"{clients} clients", clients))

    def per_tree() -> dict[str, dict[str, list[Any]]]:
        return {t.name: {s: [] for s, _ in scenarios} for t in trees}

    ratios, seconds, cpu = per_tree(), per_tree(), per_tree()

    def medians(table: dict[str, dict[str, list[float]]]) -> dict[str, dict[str, float]]:
        return {
            name: {k: statistics.median(v) for k, v in rows.items()} for name, rows in table.items()
        }

    counts: dict[str, set[int]] = {t.name: set() for t in trees}
    for run in range(runs):
        order = trees[run % len(trees) :] + trees[: run % len(trees)]
        for scenario, n in scenarios:
            digest = upload(origin.base, os.urandom(size))
            path = f"/v1/payloads/{digest}"
            # the origin keeps no cache: each direct read is the same work, so take the median
            # of three; each read through a tree must be cold, so there is one per tree
            direct = statistics.median(
                asyncio.run(all_at_once(origin.base, path, n, digest)) for _ in range(3)
            )
            asked = origin_requests(origin, digest, 3 * n)
            for tree in order:
                before = tree.cpu_seconds()
                through = asyncio.run(all_at_once(tree.node.base, path, n, digest))
                now = origin_requests(origin, digest, asked + 1)  # also lets the tiers settle
                counts[tree.name].add(now - asked)
                asked = now
                cpu[tree.name][scenario].append(tree.cpu_seconds() - before)
                ratios[tree.name][scenario].append(through / direct)
                seconds[tree.name][scenario].append((direct, through))
                if not quiet:
                    print(
                        f"run {run + 1} {scenario}: direct {direct * 1000:.0f} ms, through "
                        f"{tree.name} {through * 1000:.0f} ms, ratio {through / direct:.2f}, "
                        f"tiers' CPU {cpu[tree.name][scenario][-1] * 1000:.0f} ms",
                        file=sys.stderr,
                    )
    return {
        "size_bytes": size,
        "median_ratio": medians(ratios),
        "median_tiers_cpu_seconds": medians(cpu),
        "seconds": seconds,
        "origin_requests_per_payload_through_the_tree": {k: sorted(v) for k, v in counts.items()},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=float, default=10.0, help="payload size (10)")
    parser.add_argument("--clients", type=int, default=50, help="concurrent clients (50)")
    parser.add_argument("--runs", type=int, default=3, help="runs (3)")
    parser.add_argument(
        "--peers",
        default=",".join(PEERS),
        help="comma-separated peer trees to build beside Outpost's (squid,varnish,nginx); "
        "'' for none; one not installed is skipped",
    )
    parser.add_argument(
        "--relay-from",
        help="the proxies' relay_from_bytes (e.g. 256KiB, 0 for off); their default if not given",
    )
    parser.add_argument("--startup-timeout", type=float, default=30.0)
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    args = parser.parse_args()
    peers = [p for p in args.peers.split(",") if p]
    unknown = set(peers) - set(PEERS)
    if unknown:
        parser.error(f"--peers: unknown {', '.join(sorted(unknown))} (known: {', '.join(PEERS)})")
    environment = clean_environment()  # before the clear: it reads os.environ
    os.environ.clear()
    os.environ.update(environment)
    with tempfile.TemporaryDirectory(prefix="outpost-tree-transfer-") as tmp:
        workdir = Path(tmp)
        trees: list[Tree] = []
        try:
            origin = start_origin(workdir, args.startup_timeout)
        except BenchmarkError as exc:
            print(f"tree_transfer: {exc}", file=sys.stderr)
            return 2
        try:
            for name in ("outpost", *peers):
                try:
                    trees.append(
                        start_tree(name, workdir, origin, args.startup_timeout, args.relay_from)
                    )
                except PeerMissing as exc:
                    print(f"tree_transfer: skipping {name}: {exc}", file=sys.stderr)
            result = measure(
                origin, trees, args.runs, int(args.size_mib * 1024 * 1024), args.clients, args.quiet
            )
        except BenchmarkError as exc:
            print(f"tree_transfer: {exc}", file=sys.stderr)
            for tree in trees:
                for server in (tree.site, tree.node):
                    print(f"--- {server.name}'s log:\n{server.log_tail()}", file=sys.stderr)
            return 2 if not trees else 1
        finally:
            for tree in trees:
                stop_server(tree.node)
                stop_server(tree.site)
            stop_server(origin)
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"payload {result['size_bytes']} bytes, median of {args.runs} runs")
    print("tree     scenario       through the tree / direct   tiers' CPU per transfer")
    cpus = result["median_tiers_cpu_seconds"]
    for name, rows in result["median_ratio"].items():  # type: ignore[attr-defined]
        for scenario, ratio in rows.items():
            tiers_cpu = cpus[name][scenario] * 1000  # type: ignore[index]
            print(f"{name:8} {scenario:14} {ratio:>25.2f}   {tiers_cpu:>18.0f} ms")
    counts = result["origin_requests_per_payload_through_the_tree"]
    print(f"origin requests per payload, per tree: {counts}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
