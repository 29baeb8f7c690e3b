"""What anonymous Frontier SQL (security issue item 10) costs a real origin (SQLite, PostgreSQL).

What it does: builds the deterministic sample database (``outpost db sample``; on PostgreSQL in a
real server it starts itself), starts ``outpost origin`` on its defaults (``OUTPOST_ORIGIN_*``
variables removed) with a private temp directory, warms it up, then

1. sends each abusive query of the report once (HEX chain, concatenated blobs, ORDER BY over a
   three-way cross join, DISTINCT over it, one URL of 64 parse-heavy payloads) and four HEX
   chains and four DISTINCTs at once, printing each answer (status, payload error, seconds);
2. runs ``--heavy`` clients (40) sending those heavy queries in a loop for ``--seconds``, each
   retrying at once when turned away, while one client reads ``/v1/globaltags`` one request after
   the other: its latency percentiles are the starvation figure.

It prints the origin's peak RSS growth (VmHWM after the run minus VmRSS before it, VmHWM reset
before the run; the origin process and its SQL-checking worker processes together), the peak of
the origin's temp files (open files under its temp directory, sampled every 20 ms), on
PostgreSQL the peak growth of all its processes' private memory (RssAnon, sampled) and of
``base/pgsql_tmp``, and ``/v1/globaltags`` latency without and with the heavy loop. The limits:
memory and temp growth at most 256 MiB each, p99 under 200 ms, no HTTP 500.

Usage::

    .venv/bin/python benchmarks/frontier_abuse.py [--backend sqlite|postgresql]
        [--heavy 40] [--seconds 20] [--json]

Exit status: 0 within every limit, 1 when a limit is exceeded, 2 when it could not run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from harness import clean_environment
from support.abuse import (
    CONCAT_BLOBS,
    CROSS_JOIN_ORDER_BY,
    DISTINCT_CROSS_JOIN,
    HEX_CHAIN,
    MIB,
    Peaks,
    clear_tree_peak,
    descendants,
    origin_process,
    parse_heavy_url,
    postgres_processes,
    sampling,
    together,
    tree_rss,
)
from support.fnkit import HEADERS, frontier_url, parse_answer
from support.servers import outpost_command, postgres_server

LIMIT_BYTES = 256 * MIB
LIMIT_P99_SECONDS = 0.2

ATTACKS = {
    "hex chain": frontier_url(HEX_CHAIN),
    "concatenated blobs": frontier_url(CONCAT_BLOBS),
    "cross join ORDER BY": frontier_url(CROSS_JOIN_ORDER_BY),
    "cross join DISTINCT": frontier_url(DISTINCT_CROSS_JOIN),
    "64 parse-heavy payloads": parse_heavy_url(),
    "32 payloads, 512 KiB of SQL": parse_heavy_url(32, 16 * 1024),
    "32 payloads, 64 KiB of SQL": parse_heavy_url(32, 2 * 1024),
}
HEAVY = [name for name in ATTACKS if name != "hex chain" and not name.startswith("64")]


@dataclass
class Answer:
    name: str
    status: int
    outcome: str  # ok, the payload error or global error, or the JSON error of a non-200
    seconds: float


@dataclass
class Report:
    backend: str
    answers: list[Answer] = field(default_factory=list)
    origin_rss_before: int = 0
    origin_peak_growth: int = 0
    origin_cpu_seconds_parse_heavy: float = 0.0
    peaks: dict[str, int] = field(default_factory=dict)
    heavy_answers: dict[str, int] = field(default_factory=dict)
    globaltags_ms: dict[str, float] = field(default_factory=dict)
    globaltags_quiet_ms: dict[str, float] = field(default_factory=dict)

    def problems(self) -> list[str]:
        failed = [a for a in self.answers if a.status >= 500 and a.status != 503]
        found = [f"{a.name}: HTTP {a.status}" for a in failed]
        found += [f"heavy loop: {n} x {k}" for k, n in self.heavy_answers.items() if "500" in k]
        for name, value in (
            ("origin peak RSS growth", self.origin_peak_growth),
            ("origin temp files", self.peaks.get("origin_temp", 0)),
            ("PostgreSQL private memory growth", self.peaks.get("postgres_anon_growth", 0)),
            ("PostgreSQL temp files", self.peaks.get("postgres_temp", 0)),
        ):
            if value > LIMIT_BYTES:
                found.append(f"{name} {value / MIB:.0f} MiB > {LIMIT_BYTES // MIB} MiB")
        if self.globaltags_ms.get("p99", 0) > LIMIT_P99_SECONDS * 1000:
            found.append(f"/v1/globaltags p99 {self.globaltags_ms['p99']:.0f} ms >= 200 ms")
        return found


def outcome_of(response: httpx.Response) -> str:
    if response.status_code != 200:
        return response.text[:120]
    answer = parse_answer(response.content)
    if answer.global_error:
        return f"global error: {answer.global_error[:100]}"
    errors = [p.message for p in answer.payloads if p.error]
    return f"payload error: {errors[0][:100]}" if errors else "ok"


def send(client: httpx.Client, name: str, url: str) -> Answer:
    started = time.perf_counter()
    response = client.get(url, headers=HEADERS)
    return Answer(name, response.status_code, outcome_of(response), time.perf_counter() - started)


def cpu_seconds(pid: int) -> float:
    """CPU time of `pid` and its descendants (the SQL-checking processes), in seconds."""
    total = 0
    for each in [pid, *descendants(pid)]:
        fields = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime + stime, in clock ticks of 10 ms
    return total / 100


def at_once(base: str, name: str, url: str, count: int) -> list[Answer]:
    def one() -> Answer:
        with httpx.Client(base_url=base, timeout=120, trust_env=False) as client:
            return send(client, f"{name} ({count} at once)", url)

    return together(one, count)


def attack(base: str, heavy: int, seconds: float, queries: list[str], results: Any) -> None:
    """`heavy` clients loop over the heavy queries for `seconds` (in a process of their own)."""
    stop = threading.Event()
    kinds: Counter[str] = Counter()
    lock = threading.Lock()

    def attacker(index: int) -> None:
        with httpx.Client(base_url=base, timeout=120, trust_env=False) as client:
            turn = index
            while not stop.is_set():
                response = client.get(queries[turn % len(queries)], headers=HEADERS)
                kind = f"{response.status_code} {outcome_of(response).split(':')[0][:20]}"
                with lock:
                    kinds[kind] += 1
                turn += 1

    threads = [threading.Thread(target=attacker, args=(i,)) for i in range(heavy)]
    for thread in threads:
        thread.start()
    stop.wait(seconds)
    stop.set()
    for thread in threads:
        thread.join()
    results.put(dict(kinds))


def starvation(
    base: str, heavy: int, seconds: float, names: Sequence[str]
) -> tuple[dict[str, int], list[float]]:
    """`heavy` clients in another process send heavy queries; this one times `/v1/globaltags`.

    (Another process: the attackers' threads would otherwise delay the timing client's own.)
    """
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    queries = [ATTACKS[name] for name in names]
    attackers = context.Process(target=attack, args=(base, heavy, seconds + 1.5, queries, results))
    attackers.start()
    time.sleep(1)  # the heavy queries are running
    latencies = globaltags_latencies(base, seconds)
    kinds: dict[str, int] = results.get(timeout=300)
    attackers.join()
    return kinds, latencies


def globaltags_latencies(base: str, seconds: float) -> list[float]:
    """`/v1/globaltags`, one request after the other (10 ms apart) for `seconds`."""
    latencies = []
    with httpx.Client(base_url=base, timeout=30, trust_env=False) as client:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            started = time.perf_counter()
            response = client.get("/v1/globaltags")
            latencies.append(time.perf_counter() - started)
            response.raise_for_status()
            time.sleep(0.01)
    return latencies


def percentiles(latencies: Sequence[float]) -> dict[str, float]:
    cuts = statistics.quantiles(latencies, n=100, method="inclusive")
    return {
        "count": len(latencies),
        "p50": cuts[49] * 1000,
        "p99": cuts[98] * 1000,
        "max": max(latencies) * 1000,
    }


@contextlib.contextmanager
def database(backend: str, root: Path) -> Iterator[tuple[str, int | None, Path | None]]:
    """(URL, postmaster PID, data directory) of a fresh sample database."""
    if backend == "sqlite":
        url = f"sqlite:///{root / 'conditions.sqlite'}"
        fill(url)
        yield url, None, None
        return
    with postgres_server() as server:
        server.execute("CREATE DATABASE bench")
        url = server.url("bench")
        fill(url)
        yield url, *postgres_processes(url)


def fill(url: str) -> None:
    for args in (["db", "init"], ["db", "sample"]):
        subprocess.run(
            [*outpost_command(*args), "--db", url],
            check=True,
            capture_output=True,
            env=clean_environment(),
            timeout=300,
        )


def benchmark(args: argparse.Namespace) -> Report:
    report = Report(args.backend)
    root = Path(tempfile.mkdtemp(prefix="frontier-abuse-"))
    with (
        database(args.backend, root) as (url, postmaster, data),
        origin_process(url, root) as origin,
    ):
        report.globaltags_quiet_ms = percentiles(globaltags_latencies(origin.url, args.seconds / 2))
        report.origin_rss_before = tree_rss(origin.pid)
        clear_tree_peak(origin.pid)
        with sampling(origin.pid, origin.temp, postmaster, data) as peaks:
            with httpx.Client(base_url=origin.url, timeout=120, trust_env=False) as client:
                for name, attack in ATTACKS.items():
                    cpu = cpu_seconds(origin.pid)
                    report.answers.append(send(client, name, attack))
                    progress(args, report.answers[-1])
                    if name == "32 payloads, 64 KiB of SQL":
                        report.origin_cpu_seconds_parse_heavy = cpu_seconds(origin.pid) - cpu
            for name in ("hex chain", "cross join DISTINCT"):
                for answer in at_once(origin.url, name, ATTACKS[name], 4):
                    report.answers.append(answer)
                    progress(args, answer)
            kinds, latencies = starvation(origin.url, args.heavy, args.seconds, args.query)
        peak = tree_rss(origin.pid, "VmHWM")
        report.origin_peak_growth = max(0, peak - report.origin_rss_before)
        report.peaks = summary(peaks)
        report.heavy_answers = kinds
        report.globaltags_ms = percentiles(latencies)
    return report


def summary(peaks: Peaks) -> dict[str, int]:
    return {
        "origin_temp": peaks.origin_temp,
        "postgres_temp": peaks.postgres_temp,
        "postgres_anon_growth": peaks.postgres_anon_growth,
        "samples": peaks.samples,
    }


def progress(args: argparse.Namespace, answer: Answer) -> None:
    if not args.json:
        print(
            f"  {answer.name:<36} HTTP {answer.status}  {answer.seconds:6.2f} s  {answer.outcome}",
            file=sys.stderr,
        )


def render(report: Report) -> str:
    lines = [
        f"backend: {report.backend}",
        f"origin and its SQL-checking processes, RSS before: {report.origin_rss_before / MIB:.0f}"
        f" MiB; peak growth (VmHWM - before): {report.origin_peak_growth / MIB:.1f} MiB",
        f"origin temp files, peak: {report.peaks['origin_temp'] / MIB:.1f} MiB",
        f"origin CPU for one URL of 32 parse-heavy payloads, 64 KiB of SQL: "
        f"{report.origin_cpu_seconds_parse_heavy:.2f} s",
    ]
    if report.backend == "postgresql":
        lines += [
            f"PostgreSQL private memory (RssAnon, all processes), peak growth: "
            f"{report.peaks['postgres_anon_growth'] / MIB:.1f} MiB",
            f"PostgreSQL temp files (base/pgsql_tmp), peak: "
            f"{report.peaks['postgres_temp'] / MIB:.1f} MiB",
        ]
    g, q = report.globaltags_ms, report.globaltags_quiet_ms
    lines += [
        f"/v1/globaltags without Frontier load: {q['count']:.0f} requests, p50 {q['p50']:.1f} ms,"
        f" p99 {q['p99']:.1f} ms, max {q['max']:.1f} ms",
        f"/v1/globaltags under the heavy loop: {g['count']:.0f} requests, p50 {g['p50']:.1f} ms,"
        f" p99 {g['p99']:.1f} ms, max {g['max']:.1f} ms",
        "heavy loop answers: "
        + ", ".join(f"{n} x {k}" for k, n in sorted(report.heavy_answers.items())),
    ]
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--heavy", type=int, default=40, help="concurrent heavy clients")
    parser.add_argument("--seconds", type=float, default=20, help="length of the heavy loop")
    parser.add_argument(
        "--query",
        action="append",
        choices=HEAVY,
        help=f"a heavy query of the loop (repeatable; default: all of {', '.join(HEAVY)})",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    args = parser.parse_args(argv)
    args.query = args.query or HEAVY
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        report = benchmark(args)
    except (OSError, RuntimeError, subprocess.CalledProcessError, httpx.HTTPError) as exc:
        print(f"frontier_abuse: could not run: {exc}", file=sys.stderr)
        return 2
    problems = report.problems()
    if args.json:
        print(json.dumps({**asdict(report), "problems": problems}, indent=2))
    else:
        print(render(report))
        print("limits: " + ("all met" if not problems else "; ".join(problems)))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
