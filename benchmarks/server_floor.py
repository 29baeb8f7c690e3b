"""A node cache's CPU per hit against the least an ASGI app can spend on the same server.

In the load test's storms every Outpost node cache is on its hit path, and the machine is
CPU-bound: each CPU second a cache spends is taken from the load generator. This benchmark
serves the storm's payload mix (every payload the sample global tag names for run 500, 25
payloads of 233 B to ~300 KiB, ~46 KiB on average) as hits

- from `outpost proxy` (memory cache, warmed first), and
- from `bare_asgi.py` on the same server with the same server settings: an ASGI app that
  answers each path with the status, headers and body the proxy answered it with, byte for
  byte, after one dictionary read (the least any ASGI cache can do),

with `wrk -t1 -c{connections} -s mix.lua` cycling through the paths, in alternating rounds
(outpost, bare, outpost, bare, ...; this VM's speed drifts by tens of percent within minutes).
Each server is pinned to CPU 0, wrk to CPU 1. For each round it reports requests per second and
the server's CPU microseconds per request (CPU time of its process group / requests); then the
medians and their ratio outpost/bare. Above 1, the rest is Outpost's own code on the ASGI path
(granian); below 1, hits cost less than any ASGI app could make them (uvicorn, where
`proxy.protocol` answers plain hits below ASGI).

Hits are checked, not assumed: the origin's /v1/payloads counter must not move during a
measurement, and wrk must see no errors and no non-2xx answers.

Usage::

    .venv/bin/python benchmarks/server_floor.py [--rounds 3] [--duration 8] [--connections 64]
        [--server uvicorn|granian] [--json]

Exit status: 0 when every measurement was clean, 1 otherwise, 2 when it could not run.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import statistics
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
from harness import HOST, free_port, outpost_command
from hit_throughput import (
    Server,
    children_cpu_seconds,
    group_cpu_seconds,
    origin_payload_requests,
    outpost_hit,
    start_server,
    stop_server,
    wait_ready,
    wrk_like_client,
)
from wrk import BenchmarkError, can_pin, find_wrk, parse_wrk, run_wrk, wrk_command

SERVER_CPU = 0
GLOBALTAG = "OUTPOST_HLT_2026_V1"
RUN = 500
HERE = Path(__file__).resolve().parent


@dataclass
class Round:
    server: str
    requests_per_sec: float
    cpu_us_per_request: float
    wrk_cpu_percent: float
    errors: int
    origin_requests: int


def storm_paths(client: httpx.Client, proxy: Server) -> list[str]:
    """The payload paths a farm node fetches at the start of run 500."""
    response = client.get(f"{proxy.base}/v1/resolve/{GLOBALTAG}?run={RUN}")
    if response.status_code != 200:
        raise BenchmarkError(f"resolve through the proxy: HTTP {response.status_code}")
    return [f"/v1/payloads/{record['payload']}" for record in response.json()["records"]]


def record_hits(client: httpx.Client, proxy: Server, paths: list[str]) -> dict[str, Any]:
    """Warm the proxy until every path is a hit; the hit answers, as the bare app sends them."""
    answers: dict[str, Any] = {}
    for path in paths:
        for _ in range(5):
            response = client.get(proxy.base + path)
            if response.status_code == 200 and outpost_hit(response.headers["cache-status"]):
                break
        else:
            raise BenchmarkError(f"{path} is not a hit in the proxy after 5 GETs")
        answers[path] = (200, list(response.headers.raw), response.content)
    return answers


def write_mix(path: Path, paths: list[str]) -> None:
    """A wrk script that requests the paths in turn, as a node's storm does."""
    quoted = ", ".join(f'"{p}"' for p in paths)
    path.write_text(
        f"paths = {{{quoted}}}\ni = 0\n"
        "request = function()\n  i = i + 1\n"
        '  return wrk.format("GET", paths[(i % #paths) + 1])\nend\n'
    )


def measure(
    args: argparse.Namespace,
    wrk: str,
    pin: bool,
    mix: Path,
    client: httpx.Client,
    origin: Server,
    server: Server,
) -> Round:
    run_wrk(wrk_command(wrk, server.base, args.connections, 2, pin, mix), 2)  # warm-up
    before = origin_payload_requests(client, origin)
    cpu_before = group_cpu_seconds(server.process.pid)
    wrk_before = children_cpu_seconds()
    command = wrk_command(wrk, server.base, args.connections, args.duration, pin, mix)
    output = run_wrk(command, args.duration)
    wrk_cpu = children_cpu_seconds() - wrk_before
    cpu = group_cpu_seconds(server.process.pid) - cpu_before
    server.check_alive()
    result = parse_wrk(output)
    seconds = result.duration_s or float(args.duration)
    return Round(
        server=server.name,
        requests_per_sec=result.requests_per_sec,
        cpu_us_per_request=1e6 * cpu / max(1, result.requests),
        wrk_cpu_percent=100.0 * wrk_cpu / seconds,
        errors=result.errors,
        origin_requests=origin_payload_requests(client, origin) - before,
    )


def benchmark(args: argparse.Namespace, wrk: str, pin: bool) -> list[Round]:
    rounds: list[Round] = []
    servers: list[Server] = []
    with tempfile.TemporaryDirectory(prefix="outpost-floor-") as tmp, wrk_like_client() as client:
        root = Path(tmp)
        try:
            db = f"sqlite:///{root / 'outpost.sqlite'}"
            port = free_port()
            command = [*outpost_command(), "origin", "--db", db, "--sample", "--host", HOST]
            command += ["--port", str(port), "--log-level", "warning"]
            origin = start_server("origin", command, port, root / "origin.log", None)
            servers.append(origin)
            wait_ready(client, origin, args.startup_timeout)

            port = free_port()
            command = [*outpost_command(), "proxy", "--name", "node", "--host", HOST]
            command += ["--port", str(port), "--upstream", origin.base, "--server", args.server]
            command += ["--log-level", "warning"]
            cpu = SERVER_CPU if pin else None
            proxy = start_server("outpost", command, port, root / "proxy.log", cpu)
            servers.append(proxy)
            wait_ready(client, proxy, args.startup_timeout)
            paths = storm_paths(client, proxy)
            answers = record_hits(client, proxy, paths)
            (root / "answers.pickle").write_bytes(pickle.dumps(answers))
            write_mix(root / "mix.lua", paths)

            port = free_port()
            command = [sys.executable, str(HERE / "bare_asgi.py"), str(root / "answers.pickle")]
            command += ["--port", str(port), "--server", args.server]
            bare = start_server("bare", command, port, root / "bare.log", cpu)
            servers.append(bare)
            wait_ready(client, bare, args.startup_timeout)

            for number in range(args.rounds):
                for server in (proxy, bare):
                    if not args.quiet:
                        print(f"[floor] round {number + 1}: {server.name}", file=sys.stderr)
                    rounds.append(measure(args, wrk, pin, root / "mix.lua", client, origin, server))
        finally:
            for server in reversed(servers):
                stop_server(server)
    return rounds


def summary(rounds: list[Round]) -> dict[str, Any]:
    medians = {
        name: {
            "requests_per_sec": statistics.median(r.requests_per_sec for r in mine),
            "cpu_us_per_request": statistics.median(r.cpu_us_per_request for r in mine),
        }
        for name in ("outpost", "bare")
        if (mine := [r for r in rounds if r.server == name])
    }
    ours, bare = medians["outpost"], medians["bare"]
    return {
        "medians": medians,
        "outpost_over_bare_cpu": ours["cpu_us_per_request"] / bare["cpu_us_per_request"],
        "outpost_over_bare_requests_per_sec": ours["requests_per_sec"] / bare["requests_per_sec"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (3)")
    parser.add_argument("--duration", type=int, default=8, help="seconds per measurement (8)")
    parser.add_argument("--connections", type=int, default=64, help="wrk connections (64)")
    parser.add_argument("--server", choices=("uvicorn", "granian"), default="uvicorn")
    parser.add_argument("--startup-timeout", type=float, default=30.0)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    args = parser.parse_args()
    if min(args.rounds, args.duration, args.connections) < 1:
        parser.error("--rounds, --duration and --connections must be at least 1")
    wrk = find_wrk()
    if wrk is None:
        print("benchmark: wrk is not installed (apt-get install wrk)", file=sys.stderr)
        return 2
    pin = can_pin() and SERVER_CPU in os.sched_getaffinity(0)
    try:
        rounds = benchmark(args, wrk, pin)
    except BenchmarkError as exc:
        print(f"benchmark: {exc}", file=sys.stderr)
        return 2
    result = {"server": args.server, "pinned": pin, **summary(rounds)}
    if args.json:
        print(json.dumps({**result, "rounds": [asdict(r) for r in rounds]}))
    else:
        print(f"storm payload mix as hits, wrk -t1 -c{args.connections} -d{args.duration}s, ")
        print(f"server {args.server}, {'pinned to CPU 0' if pin else 'not pinned'}")
        print("round  server   req/s  CPU us/request  wrk%  errors  origin requests")
        for number, r in enumerate(rounds):
            print(
                f"{number // 2 + 1:>5}  {r.server:<7} {r.requests_per_sec:>6.0f}  "
                f"{r.cpu_us_per_request:>14.1f}  {r.wrk_cpu_percent:>4.0f}  {r.errors:>6}  "
                f"{r.origin_requests:>15}"
            )
        for name, m in result["medians"].items():
            print(
                f"median {name:<7} {m['requests_per_sec']:>6.0f} req/s, "
                f"{m['cpu_us_per_request']:.1f} CPU us per request"
            )
        print(
            f"outpost/bare: CPU per hit {result['outpost_over_bare_cpu']:.2f}, "
            f"requests per second {result['outpost_over_bare_requests_per_sec']:.2f}"
        )
    dirty = [r for r in rounds if r.errors or r.origin_requests]
    if dirty:
        print(f"benchmark: {len(dirty)} unclean measurement(s)", file=sys.stderr)
    return 1 if dirty else 0


if __name__ == "__main__":
    sys.exit(main())
