"""Baseline throughput and latency of the Outpost origin, measured with wrk over loopback.

What it measures: the two reads a trigger farm node makes, served straight by the origin with
nothing in front of it:

- ``resolve``: ``GET /v1/resolve/OUTPOST_HLT_2026_V1?run=500``, the per-run question "which
  payload for every record", about 5.5 KiB of JSON. wrk sends no ``Accept-Encoding``, so the
  answer is not gzipped: this is the cost of the SQL plus the JSON encoding.
- ``payload``: ``GET /v1/payloads/{sha256}`` of the sample's 1 MiB payload (the first
  L1TUtmTriggerMenu object): the cost of streaming a blob out of the database.

Why: this is the baseline of the origin before any cache (proxy hierarchy, in-process caches).
Every later layer is judged against these numbers, so the set-up is fixed and reproducible: a
fresh deterministic sample database (``outpost db sample``) in a temporary directory, the
origin's default settings (``OUTPOST_ORIGIN_*`` variables are removed from its environment),
one wrk thread pinned to CPU 1 when ``taskset`` is available, a 2 s warm-up per target, then
``wrk -t1 -c{connections} -d{duration}s --latency``. On a 2-core machine wrk and the origin share
the CPU, so read the numbers as relative, not as capacity of a dedicated server.

Usage::

    .venv/bin/python benchmarks/origin.py [--duration 10] [--connections 32] [--workers 1] [--json]

Exit status: 0 when wrk saw only 2xx/3xx answers and no socket errors, 1 when it reported
non-2xx/3xx answers or socket errors (connect, read, write, timeout), 2 when the benchmark
could not run (origin did not start, wrk missing or its output unreadable).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from harness import HOST, clean_environment, free_port, outpost_command, tail
from wrk import (
    WRK_CPU,
    BenchmarkError,
    WrkResult,
    can_pin,
    find_wrk,
    parse_wrk,
    run_wrk,
    wrk_command,
    wrk_version,
)

GLOBAL_TAG = "OUTPOST_HLT_2026_V1"
RESOLVE_PATH = f"/v1/resolve/{GLOBAL_TAG}?run=500"
PAYLOAD_QUERY_PATH = "/v1/query/payloads?select=hash,size&size=eq.1048576&limit=1"
HEALTH_PATH = "/_outpost/healthz"
TARGET_PAYLOAD_SIZE = 1024 * 1024

_MIB = 1024**2


@dataclass(frozen=True)
class Target:
    name: str
    path: str
    detail: str


# --- the origin ----------------------------------------------------------------------------


def build_sample(db_url: str) -> None:
    command = [*outpost_command(), "db", "sample", "--db", db_url]
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=300, env=clean_environment()
        )
    except subprocess.TimeoutExpired as exc:
        raise BenchmarkError("`outpost db sample` did not finish within 300 s") from exc
    if done.returncode != 0:
        raise BenchmarkError(f"`outpost db sample` failed:\n{done.stdout}{done.stderr}")


def start_origin(db_url: str, port: int, workers: int, log: Path) -> subprocess.Popen[bytes]:
    command = [
        *outpost_command(),
        "origin",
        "--db",
        db_url,
        "--host",
        HOST,
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--log-level",
        "warning",
    ]
    with log.open("wb") as sink:
        # Its own session: with --workers > 1 uvicorn forks, and stop_origin signals the group.
        return subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=clean_environment(),
            start_new_session=True,
        )


def stop_origin(process: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """SIGTERM to the origin's process group, SIGKILL if it is still there after `timeout`."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):  # the whole group is already gone
            os.killpg(process.pid, sig)
        try:
            process.wait(timeout=timeout)
            return
        except subprocess.TimeoutExpired:
            continue


# Loopback only, never through an HTTP proxy from the environment.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http_get(url: str, timeout: float = 10.0) -> tuple[int, bytes]:
    try:
        with _OPENER.open(url, timeout=timeout) as response:
            return int(response.status), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def wait_healthy(base: str, process: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last = "no answer yet"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BenchmarkError(
                f"the origin exited with status {process.returncode} before it was healthy:\n"
                f"{tail(log)}"
            )
        try:
            status, _ = http_get(base + HEALTH_PATH, timeout=1.0)
            if status == 200:
                return
            last = f"HTTP {status}"
        except OSError as exc:
            last = str(exc)
        time.sleep(0.1)
    raise BenchmarkError(
        f"the origin did not answer 200 on {base}{HEALTH_PATH} within {timeout:g} s "
        f"(last: {last}); its log:\n{tail(log)}"
    )


def get_json(url: str) -> Any:
    status, body = http_get(url)
    if status != 200:
        raise BenchmarkError(f"GET {url}: HTTP {status}: {body[:300]!r}")
    return json.loads(body)


def pick_targets(base: str) -> list[Target]:
    """The resolve URL and the payload closest to 1 MiB, each checked with one GET."""
    resolve = get_json(base + RESOLVE_PATH)
    chosen: tuple[str, int] | None = None
    try:
        answer = get_json(base + PAYLOAD_QUERY_PATH)
        if answer.get("rows"):
            row = dict(zip(answer["columns"], answer["rows"][0], strict=True))
            chosen = (str(row["hash"]), int(row["size"]))
    except (BenchmarkError, KeyError, TypeError, ValueError):
        chosen = None  # the generic query endpoint is unavailable: use the resolve answer
    if chosen is None:
        records = resolve.get("records") or []
        if not records:
            raise BenchmarkError(f"{RESOLVE_PATH} resolved no records")
        best = min(records, key=lambda r: abs(int(r["size"]) - TARGET_PAYLOAD_SIZE))
        chosen = (str(best["payload"]), int(best["size"]))
    digest, size = chosen
    payload_path = f"/v1/payloads/{digest}"
    status, body = http_get(base + payload_path)
    if status != 200 or len(body) != size:
        raise BenchmarkError(f"GET {payload_path}: HTTP {status}, {len(body)} bytes, not {size}")
    return [
        Target("resolve", RESOLVE_PATH, f"{len(resolve.get('records', []))} records"),
        Target("payload", payload_path, f"{size / _MIB:.2f} MiB"),
    ]


# --- the run ---------------------------------------------------------------------------------


@dataclass
class Measurement:
    target: str
    url: str
    detail: str
    result: WrkResult


def benchmark(args: argparse.Namespace, wrk: str, pin: bool) -> list[Measurement]:
    measurements = []
    with tempfile.TemporaryDirectory(prefix="outpost-bench-") as tmp:
        root = Path(tmp)
        db_url = f"sqlite:///{root / 'outpost.sqlite'}"
        progress(args, f"building the sample database in {root}")
        build_sample(db_url)
        port = free_port()
        base = f"http://{HOST}:{port}"
        log = root / "origin.log"
        progress(args, f"starting the origin on {base} with {args.workers} worker(s)")
        process = start_origin(db_url, port, args.workers, log)
        try:
            wait_healthy(base, process, log, args.startup_timeout)
            for target in pick_targets(base):
                url = base + target.path
                if args.warmup > 0:
                    progress(args, f"{target.name}: warm-up {args.warmup} s")
                    run_wrk(wrk_command(wrk, url, args.connections, args.warmup, pin), args.warmup)
                progress(args, f"{target.name}: measuring {args.duration} s on {url}")
                output = run_wrk(
                    wrk_command(wrk, url, args.connections, args.duration, pin), args.duration
                )
                measurements.append(Measurement(target.name, url, target.detail, parse_wrk(output)))
                if process.poll() is not None:
                    raise BenchmarkError(f"the origin died during the run:\n{tail(log)}")
        finally:
            stop_origin(process)
    return measurements


def progress(args: argparse.Namespace, message: str) -> None:
    if not args.quiet:
        print(f"[bench] {message}", file=sys.stderr, flush=True)


def render_table(measurements: Sequence[Measurement]) -> str:
    header = ("target", "req/s", "MiB/s", "p50 ms", "p99 ms", "errors")
    rows = [
        (
            f"{m.target} ({m.detail})",
            f"{m.result.requests_per_sec:.1f}",
            f"{m.result.transfer_mib_per_sec:.2f}",
            f"{m.result.latency_ms['p50']:.2f}",
            f"{m.result.latency_ms['p99']:.2f}",
            error_text(m.result),
        )
        for m in measurements
    ]
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    lines = []
    for row in (header, *rows):
        cells = [row[0].ljust(widths[0])] + [
            c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)
        ]
        lines.append("  ".join(cells).rstrip())
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def error_text(result: WrkResult) -> str:
    if not result.errors:
        return "0"
    parts = [f"non-2xx/3xx {result.non_2xx_3xx}"] if result.non_2xx_3xx else []
    parts += [f"{k} {v}" for k, v in asdict(result.socket_errors).items() if v]
    return ", ".join(parts)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Baseline wrk benchmark of the Outpost origin (resolve + 1 MiB payload)."
    )
    parser.add_argument("--duration", type=int, default=10, help="seconds per measurement")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections (-c)")
    parser.add_argument("--workers", type=int, default=1, help="origin worker processes")
    parser.add_argument("--warmup", type=int, default=2, help="warm-up seconds per target")
    parser.add_argument(
        "--startup-timeout", type=float, default=30.0, help="seconds to wait for healthz"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    args = parser.parse_args(argv)
    for name in ("duration", "connections", "workers"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    if args.warmup < 0 or args.startup_timeout <= 0:
        parser.error("--warmup must be >= 0 and --startup-timeout > 0")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    wrk = find_wrk()
    if wrk is None:
        print("benchmark: wrk is not installed (apt-get install wrk)", file=sys.stderr)
        return 2
    pin = can_pin()
    if not pin:
        progress(args, f"not pinning wrk: taskset missing or CPU {WRK_CPU} unavailable")
    try:
        measurements = benchmark(args, wrk, pin)
    except BenchmarkError as exc:
        print(f"benchmark: {exc}", file=sys.stderr)
        return 2
    failed = any(m.result.errors for m in measurements)
    config = {
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "connections": args.connections,
        "wrk_threads": 1,
        "workers": args.workers,
        "wrk_pinned_cpu": WRK_CPU if pin else None,
        "cpus": os.cpu_count(),
        "wrk": wrk_version(wrk),
        "python": platform.python_version(),
    }
    if args.json:
        document = {
            "benchmark": "outpost-origin-baseline",
            "config": config,
            "ok": not failed,
            "targets": [
                {
                    "target": m.target,
                    "url": m.url,
                    "detail": m.detail,
                    **asdict(m.result),
                    "errors": m.result.errors,
                }
                for m in measurements
            ],
        }
        print(json.dumps(document))
    else:
        pinned = f"wrk pinned to CPU {WRK_CPU}" if pin else "wrk not pinned"
        print(
            f"outpost origin, {args.workers} worker(s); wrk -t1 -c{args.connections} "
            f"-d{args.duration}s after {args.warmup}s warm-up; {pinned}; "
            f"{os.cpu_count()} CPUs"
        )
        print(render_table(measurements))
    if failed:
        print("benchmark: wrk reported non-2xx/3xx answers or socket errors", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
