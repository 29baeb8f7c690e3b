"""Cold stampede: how long each cache takes to answer every request when all requests for cold
URLs arrive at once, against the same slow origin.

Caches, in the same run, each in front of the same origin (`slow_origin.py`: every GET answered
after `--delay-ms`, default 50 ms, with `--body-bytes`, default 1 KiB, cacheable for 300 s):

- `outpost proxy` (uvicorn, 1 worker, default settings);
- squid as an accelerator with `collapsed_forwarding on` (`loadtest.peers.prepare_squid`);
- nginx as a caching reverse proxy, `proxy_cache` with `proxy_cache_lock on`, 1 worker
  (`loadtest.peers.prepare_nginx_proxy_cache`);
- varnish (`varnishd -F -a … -b ORIGIN -s malloc,256m`), which coalesces misses by default.

A cache that is not installed is skipped with a message. Scenarios, each run `--runs` times
(3) for every cache, on fresh URLs every time (a per-invocation token, the cache's name, the
run and the scenario are in the path), caches interleaved within each round:

1. `1 URL x 1000 requests`;
2. `200 URLs x 10 requests`.

Before each run the script waits until the cache is idle (no CPU used for 0.25 s). Each
request has its own connection. All connections are opened first (then a short pause so
the server has accepted them), then every request is written in one tight loop, then every
answer is read: the time from the first write to the last complete answer is the "time to
answer all". The origin's per-path counts tell how many requests each URL cost upstream (a
coalescing cache sends exactly one).

The caches run on CPU 0 (`taskset`), this client and the origin on CPU 1, when the machine has
both (`--no-pin` leaves everything unpinned).

Exit status: 0 when it ran and every answer was a 200 of the right length; 1 when an answer
failed (or timed out); 2 when it could not run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from harness import HOST, free_port, outpost_command, varnish_command
from hit_throughput import Server, group_cpu_seconds, start_server, stop_server
from wrk import BenchmarkError

from loadtest.peers import PeerMissing, find_peer, prepare_nginx_proxy_cache, prepare_squid

CACHES = ("outpost", "squid", "nginx", "varnish")
SCENARIOS = (("1 URL x 1000 requests", 1, 1000), ("200 URLs x 10 requests", 200, 10))
CACHE_CPU = 0
CLIENT_CPU = 1
CONNECT_CONCURRENCY = 128
SETTLE_S = 0.3
FD_RESERVE = 64
AGENT = "cold-stampede"


class CannotRun(BenchmarkError):
    pass


def progress(args: argparse.Namespace, message: str) -> None:
    if not args.quiet:
        print(f"[stampede] {message}", file=sys.stderr, flush=True)


# --- the client ------------------------------------------------------------------------------


async def _read_answer(reader: asyncio.StreamReader) -> tuple[int, int]:
    """Read one HTTP/1.1 answer: (status, body length)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    headers: dict[bytes, bytes] = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip()
    if b"content-length" in headers:
        return status, len(await reader.readexactly(int(headers[b"content-length"])))
    if b"chunked" in headers.get(b"transfer-encoding", b"").lower():
        total = 0
        while True:
            size = int((await reader.readline()).split(b";")[0].strip(), 16)
            if size == 0:
                while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                    pass
                return status, total
            total += len(await reader.readexactly(size + 2)) - 2
    return status, len(await reader.read())


@dataclass
class Shot:
    """One scenario run against one cache, seen from the client."""

    elapsed_ms: float | None  # first write -> last complete answer; None if nothing answered
    write_ms: float  # first write -> last write
    failures: Counter[str] = field(default_factory=Counter)  # "HTTP 503", "timeout", "short"…
    answered_ms: dict[str, float] = field(default_factory=dict)  # first, p50, p90 answer times


def _quantiles(answers: Sequence[float]) -> dict[str, float]:
    if not answers:
        return {}
    pick = {"first": 0.0, "p10": 0.1, "p50": 0.5, "p90": 0.9, "p99": 0.99}
    return {k: answers[min(len(answers) - 1, int(q * len(answers)))] for k, q in pick.items()}


async def _connect(port: int, sem: asyncio.Semaphore) -> Any:
    async with sem:
        try:
            return await asyncio.wait_for(asyncio.open_connection(HOST, port), 10)
        except OSError as exc:
            if exc.errno in (24, 23):  # EMFILE, ENFILE
                raise CannotRun(f"cannot open enough sockets: {exc}") from exc
            return exc  # refused, reset, timed out (TimeoutError is an OSError)


async def stampede(port: int, paths: Sequence[str], body_bytes: int, timeout: float) -> Shot:
    """One connection per entry of `paths`: open all, write all, read all."""
    sem = asyncio.Semaphore(CONNECT_CONCURRENCY)
    conns = await asyncio.gather(*(_connect(port, sem) for _ in paths))
    failures: Counter[str] = Counter()
    try:
        await asyncio.sleep(SETTLE_S)  # let the server accept every connection
        done_at: list[float] = []

        async def read(reader: asyncio.StreamReader) -> None:
            try:
                status, length = await _read_answer(reader)
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
                failures["socket error"] += 1
                return
            done_at.append(time.perf_counter())
            if status != 200:
                failures[f"HTTP {status}"] += 1
            elif length != body_bytes:
                failures[f"body {length} B"] += 1

        requests = [
            f"GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nUser-Agent: {AGENT}\r\n\r\n".encode()
            for path in paths
        ]
        start = time.perf_counter()
        for conn, request in zip(conns, requests, strict=True):
            if isinstance(conn, tuple):
                conn[1].write(request)
        written = time.perf_counter()
        tasks = []
        for conn in conns:
            if isinstance(conn, tuple):
                tasks.append(asyncio.ensure_future(read(conn[0])))
            else:
                failures[f"connect: {type(conn).__name__}"] += 1
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=timeout)
            for task in pending:
                task.cancel()
                failures["timeout"] += 1
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
        answers = sorted((t - start) * 1000 for t in done_at)
        elapsed = answers[-1] if answers else None
        return Shot(elapsed, (written - start) * 1000, failures, _quantiles(answers))
    finally:
        for conn in conns:
            if isinstance(conn, tuple):
                conn[1].transport.abort()
        await asyncio.sleep(0.1)  # the loop closes the sockets now, not during the next run


# --- servers ---------------------------------------------------------------------------------


def wait_answering(server: Server, url: str, timeout: float, want: int = 200) -> None:
    deadline = time.monotonic() + timeout
    last = "no answer yet"
    with httpx.Client(trust_env=False, timeout=2.0) as client:
        while time.monotonic() < deadline:
            server.check_alive()
            try:
                response = client.get(url)
                if response.status_code == want:
                    return
                last = f"HTTP {response.status_code}"
            except httpx.HTTPError as exc:
                last = repr(exc)
            time.sleep(0.1)
    raise CannotRun(
        f"{server.name} did not answer {want} on {url} within {timeout:g} s (last: {last}); "
        f"its log:\n{server.log_tail()}"
    )


def start_cache(
    name: str, root: Path, origin_port: int, pin: int | None, args: argparse.Namespace
) -> Server | None:
    """Start one cache on a free port; None (with a message) if it is not installed."""
    port = free_port()
    origin = f"http://{HOST}:{origin_port}"
    if name == "outpost":
        command = [*outpost_command(), "proxy", "--name", "stampede", "--host", HOST]
        command += ["--port", str(port), "--upstream", origin, "--workers", "1"]
        command += ["--server", "uvicorn", "--log-level", "warning"]
        return start_server(name, command, port, root / "outpost.log", pin)
    try:
        return start_peer_cache(
            name, name, root / name, port=port, parent_port=origin_port, pin=pin
        )
    except PeerMissing as exc:
        progress(args, f"skipping {name}: {exc}")
        return None


def start_peer_cache(
    name: str, label: str, work: Path, *, port: int, parent_port: int, pin: int | None
) -> Server:
    """squid, nginx or varnish on HOST:`port` in front of HOST:`parent_port`, its files in
    `work` (created) and its output in `work`.out; `label` names the server (and is squid's
    visible hostname: two squids in one chain need two, or each takes the other's requests
    for a forwarding loop). PeerMissing if the program is not installed."""
    out = work.with_suffix(".out")
    if name == "squid":
        conf = prepare_squid(work, port=port, parent_port=parent_port, name=label)
        command = [find_peer("squid"), "-N", "-f", str(conf)]
        return start_server(label, command, port, out, pin, own_logs=[work / "cache.log"])
    if name == "nginx":
        conf = prepare_nginx_proxy_cache(work, port=port, parent_port=parent_port)
        command = [find_peer("nginx"), "-p", str(work), "-c", str(conf)]
        return start_server(label, command, port, out, pin, own_logs=[work / "error.log"])
    if name == "varnish":
        command = varnish_command(find_peer("varnishd"), work, port=port, origin_port=parent_port)
        return start_server(label, command, port, out, pin)
    raise ValueError(name)


def wait_idle(server: Server, quiet_s: float = 0.25, limit_s: float = 15.0) -> float:
    """Wait until the cache's processes used (almost) no CPU for `quiet_s`, at most `limit_s`:
    each run starts on an idle cache, whatever work the previous run left behind. The wait."""
    start = time.monotonic()
    before = group_cpu_seconds(server.process.pid)
    while time.monotonic() - start < limit_s:
        time.sleep(quiet_s)
        now = group_cpu_seconds(server.process.pid)
        if now - before < 0.02:
            break
        before = now
    return time.monotonic() - start


def origin_counts(origin_port: int, prefix: str) -> dict[str, int]:
    response = httpx.get(
        f"http://{HOST}:{origin_port}/_count", params={"prefix": prefix}, trust_env=False
    )
    response.raise_for_status()
    return dict(response.json())


# --- the run ---------------------------------------------------------------------------------


@dataclass
class RunResult:
    elapsed_ms: float | None
    write_ms: float
    failures: dict[str, int]
    origin_max_per_url: int
    origin_total: int
    urls: int
    answered_ms: dict[str, float] = field(default_factory=dict)
    cpu_ms: float = 0.0
    idle_wait_s: float = 0.0

    @property
    def failed(self) -> int:
        return sum(self.failures.values())


@dataclass
class CacheResult:
    cache: str
    runs: list[RunResult] = field(default_factory=list)

    @property
    def median_ms(self) -> float | None:
        times = [r.elapsed_ms for r in self.runs if r.elapsed_ms is not None]
        return statistics.median(times) if times else None

    @property
    def failed(self) -> int:
        return sum(r.failed for r in self.runs)


def run_benchmark(args: argparse.Namespace, pin: bool) -> tuple[dict[str, dict[str, Any]], dict]:
    token = secrets.token_hex(4)
    servers: list[Server] = []
    results: dict[str, dict[str, CacheResult]] = {s[0]: {} for s in SCENARIOS}
    info: dict[str, Any] = {"token": token, "skipped": {}}
    with tempfile.TemporaryDirectory(prefix="outpost-stampede-") as tmp:
        root = Path(tmp)
        try:
            origin_port = free_port()
            command = [sys.executable, str(Path(__file__).with_name("slow_origin.py"))]
            command += ["--port", str(origin_port), "--delay-ms", str(args.delay_ms)]
            command += ["--body-bytes", str(args.body_bytes)]
            origin = start_server(
                "origin", command, origin_port, root / "origin.log", CLIENT_CPU if pin else None
            )
            servers.append(origin)
            wait_answering(origin, f"{origin.base}/_count", args.startup_timeout)

            caches: dict[str, Server] = {}
            for name in args.only:
                server = start_cache(name, root, origin_port, CACHE_CPU if pin else None, args)
                if server is None:
                    info["skipped"][name] = "not installed"
                    continue
                servers.append(server)
                caches[name] = server
            for name, server in caches.items():
                # one GET through each cache: it is up, it reaches the origin, and it has a
                # connection to the origin before the measurements
                wait_answering(
                    server, f"{server.base}/s/{token}/{name}/ready", args.startup_timeout
                )
                progress(args, f"{name} ready on {server.base}")
            if not caches:
                raise CannotRun("no cache to measure (none of them is installed)")

            with asyncio.Runner(loop_factory=_loop_factory()) as runner:
                for scenario, urls, per_url in SCENARIOS:
                    for run in range(1, args.runs + 1):
                        for name, server in caches.items():
                            prefix = f"/s/{token}/{name}/r{run}/{'one' if urls == 1 else 'many'}/"
                            paths = [f"{prefix}u{u}" for _ in range(per_url) for u in range(urls)]
                            port = int(server.base.rsplit(":", 1)[1])
                            idle_wait = wait_idle(server)
                            cpu_before = group_cpu_seconds(server.process.pid)
                            shot = runner.run(stampede(port, paths, args.body_bytes, args.timeout))
                            cpu_ms = (group_cpu_seconds(server.process.pid) - cpu_before) * 1000
                            server.check_alive()
                            time.sleep(0.2)  # stragglers of the origin's counts
                            counts = origin_counts(origin_port, prefix)
                            result = RunResult(
                                elapsed_ms=shot.elapsed_ms,
                                write_ms=shot.write_ms,
                                failures=dict(shot.failures),
                                origin_max_per_url=max(counts.values(), default=0),
                                origin_total=sum(counts.values()),
                                urls=urls,
                                answered_ms=shot.answered_ms,
                                cpu_ms=cpu_ms,
                                idle_wait_s=idle_wait,
                            )
                            results[scenario].setdefault(name, CacheResult(name)).runs.append(
                                result
                            )
                            shown = (
                                f"{shot.elapsed_ms:.1f} ms"
                                if shot.elapsed_ms is not None
                                else "no answer"
                            )
                            progress(
                                args,
                                f"{scenario}, run {run}, {name}: {shown}, "
                                f"{result.failed} failed, origin {result.origin_total} "
                                f"requests for {urls} URL(s); answers at "
                                + ", ".join(f"{k} {v:.1f}" for k, v in shot.answered_ms.items())
                                + f" ms; writes took {shot.write_ms:.1f} ms; "
                                f"{name} CPU {cpu_ms:.0f} ms (idle after {idle_wait:.2f} s)",
                            )
                            time.sleep(0.3)
            info["versions"] = versions(caches)
        finally:
            for server in reversed(servers):
                stop_server(server)
    return results, info


def _loop_factory() -> Any:
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def versions(caches: dict[str, Server]) -> dict[str, str]:
    found: dict[str, str] = {}
    for name, flag in (("squid", "-v"), ("nginx", "-v"), ("varnish", "-V")):
        if name not in caches:
            continue
        with contextlib.suppress(OSError, subprocess.SubprocessError, PeerMissing):
            program = find_peer("varnishd" if name == "varnish" else name)
            done = subprocess.run([program, flag], capture_output=True, text=True, timeout=10)
            lines = (done.stdout + done.stderr).strip().splitlines()
            found[name] = lines[0] if lines else "unknown"
    return found


# --- output ----------------------------------------------------------------------------------


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def render(results: dict[str, dict[str, CacheResult]], args: argparse.Namespace) -> str:
    out: list[str] = []
    for scenario, urls, per_url in SCENARIOS:
        rows = results[scenario]
        out.append("")
        out.append(
            f"{scenario} ({urls * per_url} connections, all at once; origin delay "
            f"{args.delay_ms:g} ms, body {args.body_bytes} B)"
        )
        header = (
            f"{'cache':<9} {'median ms':>10}  {'runs ms':<26} {'not 200':>8} "
            f"{'origin max/URL':>15} {'origin total/URLs':>18} {'cpu ms':>8}"
        )
        out.append(header)
        out.append("-" * len(header))
        for name, r in rows.items():
            runs = ", ".join(_ms(x.elapsed_ms) for x in r.runs)
            max_per = max(x.origin_max_per_url for x in r.runs)
            per_url_avg = ", ".join(f"{x.origin_total / x.urls:g}" for x in r.runs)
            cpu = statistics.median(x.cpu_ms for x in r.runs)
            out.append(
                f"{name:<9} {_ms(r.median_ms):>10}  {runs:<26} {r.failed:>8} "
                f"{max_per:>15} {per_url_avg:>18} {cpu:>8.0f}"
            )
        ratio = _ratio(rows)
        out.append(
            "outpost/squid (median time to answer all): "
            + (f"{ratio:.2f}" if ratio is not None else "n/a (outpost or squid not measured)")
        )
    return "\n".join(out)


def _ratio(rows: dict[str, CacheResult]) -> float | None:
    if "outpost" not in rows or "squid" not in rows:
        return None
    outpost, squid = rows["outpost"].median_ms, rows["squid"].median_ms
    return outpost / squid if outpost is not None and squid else None


def to_json(
    results: dict[str, dict[str, CacheResult]], info: dict[str, Any], config: dict[str, Any]
) -> dict[str, Any]:
    scenarios = []
    for scenario, urls, per_url in SCENARIOS:
        rows = results[scenario]
        scenarios.append(
            {
                "scenario": scenario,
                "urls": urls,
                "requests_per_url": per_url,
                "ratio_outpost_to_squid": _ratio(rows),
                "caches": {
                    name: {
                        "median_ms": r.median_ms,
                        "failed": r.failed,
                        "runs": [
                            {
                                "time_to_answer_all_ms": x.elapsed_ms,
                                "write_all_ms": x.write_ms,
                                "answered_ms": x.answered_ms,
                                "cache_cpu_ms": x.cpu_ms,
                                "idle_wait_before_s": x.idle_wait_s,
                                "failures": x.failures,
                                "origin_max_per_url": x.origin_max_per_url,
                                "origin_total": x.origin_total,
                                "origin_per_url": x.origin_total / x.urls,
                            }
                            for x in r.runs
                        ],
                    }
                    for name, r in rows.items()
                },
            }
        )
    return {
        "benchmark": "outpost-proxy-cold-stampede",
        "config": config,
        "skipped": info.get("skipped", {}),
        "versions": info.get("versions", {}),
        "ok": not any(r.failed for rows in results.values() for r in rows.values()),
        "scenarios": scenarios,
    }


# --- command line ----------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Cold-URL stampede: outpost proxy vs squid, nginx and varnish."
    )
    parser.add_argument("--delay-ms", type=float, default=50.0, help="origin delay (50)")
    parser.add_argument("--body-bytes", type=int, default=1024, help="answer body size (1024)")
    parser.add_argument("--runs", type=int, default=3, help="runs per scenario and cache (3)")
    parser.add_argument(
        "--only", default=",".join(CACHES), help=f"caches to measure ({','.join(CACHES)})"
    )
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per run (60)")
    parser.add_argument(
        "--pin",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="caches on CPU 0, client and origin on CPU 1",
    )
    parser.add_argument("--startup-timeout", type=float, default=30.0)
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    args = parser.parse_args(argv)
    args.only = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = set(args.only) - set(CACHES)
    if unknown or not args.only:
        parser.error(f"--only: choose among {', '.join(CACHES)}")
    if args.runs < 1 or args.body_bytes < 0 or args.delay_ms < 0 or args.timeout <= 0:
        parser.error("--runs >= 1, --body-bytes >= 0, --delay-ms >= 0, --timeout > 0")
    return args


def raise_nofile(needed: int) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, needed)
    if soft < target:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    needed = max(urls * per_url for _, urls, per_url in SCENARIOS) + FD_RESERVE
    nofile = raise_nofile(needed)
    if nofile != resource.RLIM_INFINITY and nofile < needed:
        print(
            f"benchmark: needs {needed} file descriptors, RLIMIT_NOFILE allows {nofile} "
            "(raise the hard limit: ulimit -Hn)",
            file=sys.stderr,
        )
        return 2
    cpus = os.sched_getaffinity(0)
    pin = args.pin and shutil.which("taskset") is not None and {CACHE_CPU, CLIENT_CPU} <= cpus
    if pin:
        os.sched_setaffinity(0, {CLIENT_CPU})
    elif args.pin:
        progress(args, "not pinning: taskset missing or CPUs 0 and 1 not both available")
    load_before = os.getloadavg()
    try:
        results, info = run_benchmark(args, pin)
    except BenchmarkError as exc:
        print(f"benchmark: {exc}", file=sys.stderr)
        return 2
    finally:
        if pin:
            os.sched_setaffinity(0, cpus)
    config = {
        "delay_ms": args.delay_ms,
        "body_bytes": args.body_bytes,
        "runs": args.runs,
        "timeout_s": args.timeout,
        "caches": args.only,
        "pinned": {"caches": CACHE_CPU, "client_and_origin": CLIENT_CPU} if pin else None,
        "cpus": os.cpu_count(),
        "loadavg_before": load_before,
        "loadavg_after": os.getloadavg(),
        "nofile": nofile,
    }
    failed = any(r.failed for rows in results.values() for r in rows.values())
    if args.json:
        print(json.dumps(to_json(results, info, config)))
    else:
        pinning = (
            f"caches on CPU {CACHE_CPU}, client and origin on CPU {CLIENT_CPU}"
            if pin
            else "not pinned"
        )
        print(
            f"cold stampede: time from the first write to the last complete answer, median of "
            f"{args.runs} (fresh URLs each run); {pinning}; {os.cpu_count()} CPUs; load average "
            f"{load_before[0]:.2f} -> {config['loadavg_after'][0]:.2f}"
        )
        for name, why in info["skipped"].items():
            print(f"skipped {name}: {why}")
        if info.get("versions"):
            print("; ".join(info["versions"].values()))
        print(render(results, args))
        print(
            "\nnot 200: answers that were not a 200 with the full body, socket errors and "
            "timeouts, over all runs; origin max/URL: the most requests one URL cost upstream "
            "in any run; origin total/URLs: upstream requests per URL, each run (1 = perfect "
            "coalescing); cpu ms: the cache's CPU time per run (median; connecting, answering "
            "and closing), against the median time; outpost/squid < 1: outpost answered all "
            "sooner."
        )
    if failed:
        print("benchmark: some answers failed (see 'not 200')", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
