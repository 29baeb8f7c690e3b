"""Run a run-start storm: a `LocalStack`, Locust headless against it, run control in between.

    run_loadtest(nodes=2000, runs=3, node_proxies=4, processes=2)  -> summary dict

For each run: flush the tree through the site proxy (as run control does), note the origin's
request counters, record `t0` and write the run number to the run file the `HLTNode` users poll,
wait until every node reported the run (bounded), and read the origin's counters again.
With `processes=1` Locust runs as one headless process; with `processes=P > 1` it runs
distributed on loopback: one headless master (`--expect-workers P`, bound to 127.0.0.1 on a free
port) that only hands out users, and P worker processes that run them, each a process (and
process group) of its own, all stopped at the end. Every Locust process writes its JSON lines to
a file of its own (`nodes.jsonl.<pid>`, see the locustfile); the runner reads them together.

The helpers the Locust users share with the runner (`read_run_file`, `cache_status_tiers`) live
here, not in the locustfile, so that importing them never imports Locust (which monkey-patches
the standard library with gevent on import).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Final

import httpx
import orjson

from outpost.client.answers import decode_resolution
from outpost.commands.runcontrol import flush
from outpost.demo import origin_requests
from outpost.localstack import LocalStack
from outpost.urls import Payload, Resolve

__all__ = [
    "FIRST_RUN",
    "LOCUSTFILE",
    "TIERS",
    "LoadTestError",
    "cache_status_tiers",
    "percentile",
    "read_run_file",
    "run_loadtest",
]

LOCUSTFILE = Path(__file__).with_name("locustfile.py")
FIRST_RUN = 500
DEFAULT_GLOBALTAG = "OUTPOST_HLT_2026_V1"


TIERS: Final = ("node", "site")


def read_run_file(path: str) -> tuple[int, float]:
    """(run, t0) from the run file; (0, 0.0) while there is none or it is being written."""
    try:
        run, t0 = Path(path).read_text().split()
        return int(run), float(t0)
    except (OSError, ValueError):
        return 0, 0.0


def cache_status_tiers(header: str | None) -> dict[str, str]:
    """`{"node": "hit"|"miss", "site": …}` from a Cache-Status header (RFC 9211).

    The last entry is the cache nearest the client (the node proxy), the one before it the
    site proxy; an entry is a hit when it carries the bare `hit` parameter. A tier above a hit
    is not counted: that request never reached it.
    """
    if not header:
        return {}
    entries = [entry.strip() for entry in header.split(",") if entry.strip()]
    result: dict[str, str] = {}
    for tier, entry in zip(TIERS, reversed(entries), strict=False):
        params = [param.strip() for param in entry.split(";")[1:]]
        result[tier] = "hit" if "hit" in params else "miss"
        if result[tier] == "hit":
            break  # a hit was served here: the entries above it are replayed from the store
    return result


class LoadTestError(RuntimeError):
    """The load test could not run to the end (Locust died, nodes never reported, …)."""


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile; 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def _read_lines(prefix: Path) -> list[dict[str, Any]]:
    """Every JSON line of every Locust process's `<prefix>.<pid>` file (a line being written
    at this moment is skipped: it does not parse yet)."""
    lines = []
    for path in sorted(prefix.parent.glob(prefix.name + ".*")):
        with contextlib.suppress(OSError):
            for raw in path.read_bytes().splitlines():
                with contextlib.suppress(orjson.JSONDecodeError):
                    lines.append(orjson.loads(raw))
    return lines


def _tail(path: Path) -> str:
    return path.read_text(errors="replace")[-3000:] if path.exists() else ""


class _Locust:
    """The Locust processes of a load test, each with its log."""

    def __init__(self) -> None:
        self.processes: list[tuple[subprocess.Popen[bytes], Path]] = []

    def start(self, command: list[str], log: Path, env: dict[str, str], cwd: Path) -> None:
        with open(log, "wb") as log_out:
            process = subprocess.Popen(
                command,
                stdout=log_out,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=cwd,
                start_new_session=True,  # its own process group: killpg reaches its children
            )
        self.processes.append((process, log))

    def check(self) -> None:
        """Raise if any Locust process has exited (none should before the end)."""
        for process, log in self.processes:
            if process.poll() is not None:
                raise LoadTestError(
                    f"locust ({log.name}) exited with {process.returncode}:\n{_tail(log)}"
                )

    def tails(self) -> str:
        return "\n".join(f"--- {log.name}\n{_tail(log)}" for _, log in self.processes)

    def stop(self, grace: float = 15.0) -> None:
        """SIGTERM every process group, then SIGKILL what is left after `grace` seconds.

        The first process (the master, when there are workers) goes first and is given a few
        seconds, so the workers' last statistics still reach it before they stop.
        """
        running = [process for process, _ in self.processes if process.poll() is None]
        if len(running) > 1 and running[0] is self.processes[0][0]:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(running[0].pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                running[0].wait(5)
        for process in running:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for process in running:
            try:
                process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def _wait_until(check: Any, timeout: float, locust: _Locust, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        locust.check()
        if time.monotonic() > deadline:
            raise LoadTestError(f"{what} within {timeout} s\n{locust.tails()}")
        time.sleep(0.05)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _unique_urls(origin_url: str, globaltag: str, run: int) -> set[str]:
    """The resolve URL of the run and every payload URL it names (asked of the origin)."""
    query = Resolve(globaltag, run)
    response = httpx.get(origin_url + query.url(), timeout=30)
    response.raise_for_status()
    resolution = decode_resolution(response.content, query)
    return {query.url(), *(Payload(digest).url() for digest in resolution.payloads)}


def run_loadtest(
    nodes: int = 2000,
    runs: int = 3,
    node_proxies: int = 4,
    spawn_rate: int | None = None,
    processes: int = 2,
    *,
    db: str | None = None,
    globaltag: str = DEFAULT_GLOBALTAG,
    run_timeout: float = 120.0,
    spawn_timeout: float = 120.0,
    workdir: Path | None = None,
) -> dict[str, Any]:
    """Simulate `runs` run starts of `nodes` HLT nodes behind `node_proxies` node proxies,
    the nodes run by `processes` Locust worker processes (1: one plain headless process)."""
    if nodes < 1 or runs < 1 or node_proxies < 1 or processes < 1:
        raise ValueError("nodes, runs, node_proxies and processes must be at least 1")
    rate = spawn_rate or nodes
    work = workdir or Path(tempfile.mkdtemp(prefix="outpost-loadtest-"))
    work.mkdir(parents=True, exist_ok=True)
    run_file, out, log = work / "run", work / "nodes.jsonl", work / "locust.log"
    run_file.write_text(f"0 {time.time()}")
    for stale in work.glob(out.name + ".*"):
        stale.unlink()  # lines of an earlier load test in the same workdir
    with LocalStack(nodes=node_proxies, db=db) as stack:
        proxies = [tier.url for tier in stack.node_proxies]
        env = {
            **os.environ,
            "OUTPOST_LOADTEST_NODES": ",".join(proxies),
            "OUTPOST_LOADTEST_RUN_FILE": str(run_file),
            "OUTPOST_LOADTEST_OUT": str(out),
            "OUTPOST_LOADTEST_GLOBALTAG": globaltag,
        }
        base = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--host", proxies[0]]
        base += ["--loglevel", "WARNING"]
        head = ["--headless", "-u", str(nodes), "-r", str(rate), "--only-summary"]
        head += ["--stop-timeout", "10"]
        locust = _Locust()
        try:
            if processes == 1:
                locust.start(base + head, log, env, work)
            else:
                port = str(_free_port())
                master = ["--master", "--expect-workers", str(processes)]
                master += ["--master-bind-host", "127.0.0.1", "--master-bind-port", port]
                locust.start(base + head + master, log, env, work)
                worker = ["--worker", "--master-host", "127.0.0.1", "--master-port", port]
                for k in range(processes):
                    locust.start(base + worker, work / f"locust-worker-{k + 1}.log", env, work)
            _wait_until(
                lambda: sum(1 for x in _read_lines(out) if x.get("event") == "ready") >= nodes,
                spawn_timeout,
                locust,
                f"not all {nodes} users spawned",
            )
            results = [
                _one_run(stack, FIRST_RUN + i, nodes, globaltag, run_file, out, locust, run_timeout)
                for i in range(runs)
            ]
        finally:
            locust.stop()
    return _summary(results, nodes=nodes, node_proxies=node_proxies, workdir=work)


def _one_run(
    stack: LocalStack,
    run: int,
    nodes: int,
    globaltag: str,
    run_file: Path,
    out: Path,
    locust: _Locust,
    timeout: float,
) -> dict[str, Any]:
    acked = flush(stack.site.url, run, stack.token)
    if "error" in acked or acked.get("failed"):
        raise LoadTestError(f"flush before run {run} was not acknowledged by all: {acked}")
    before = origin_requests(stack.origin.url)
    t0 = time.time()
    tmp = run_file.with_suffix(".tmp")
    tmp.write_text(f"{run} {t0}")
    tmp.replace(run_file)  # atomic: a node never reads half a line

    def reports() -> list[dict[str, Any]]:
        return [x for x in _read_lines(out) if x.get("event") == "run" and x.get("run") == run]

    _wait_until(
        lambda: len(reports()) >= nodes, timeout, locust, f"not all nodes finished run {run}"
    )
    after = origin_requests(stack.origin.url)
    lines = reports()
    urls = _unique_urls(stack.origin.url, globaltag, run)
    seconds = [line["seconds"] for line in lines]
    cache: dict[str, dict[str, int]] = {}
    for line in lines:
        for tier, counts in line["cache"].items():
            for outcome, n in counts.items():
                tier_counts = cache.setdefault(tier, {"hit": 0, "miss": 0})
                tier_counts[outcome] = tier_counts.get(outcome, 0) + n
    origin = sum(after.values()) - sum(before.values())
    return {
        "run": run,
        "flush_acked": acked.get("acked", 0),
        "nodes_reported": len(lines),
        "time_to_configure_s": max(line["finished_at"] for line in lines) - t0,
        "node_seconds": seconds,
        "node_p50_ms": percentile(seconds, 0.50) * 1000,
        "node_p95_ms": percentile(seconds, 0.95) * 1000,
        "node_p99_ms": percentile(seconds, 0.99) * 1000,
        "failures": sum(line["failures"] for line in lines),
        "requests": sum(line["requests"] for line in lines),
        "verified_bodies": sum(line["verified"] for line in lines),
        "payloads_per_node": max(line["payloads"] for line in lines),
        "origin_requests": int(origin),
        "origin_not_modified": int(after.get("304", 0) - before.get("304", 0)),
        "unique_urls": len(urls),
        "origin_requests_per_unique_url": origin / len(urls),
        "cache": cache,
    }


def _summary(
    results: list[dict[str, Any]], *, nodes: int, node_proxies: int, workdir: Path
) -> dict[str, Any]:
    seconds = [s for result in results for s in result.pop("node_seconds")]
    cache: dict[str, dict[str, int]] = {}
    for result in results:
        for tier, counts in result["cache"].items():
            total = cache.setdefault(tier, {"hit": 0, "miss": 0})
            for outcome, n in counts.items():
                total[outcome] = total.get(outcome, 0) + n
    hit_ratio = {
        tier: counts["hit"] / (counts["hit"] + counts["miss"])
        for tier, counts in cache.items()
        if counts["hit"] + counts["miss"]
    }
    return {
        "nodes": nodes,
        "node_proxies": node_proxies,
        "runs": results,
        "failures": sum(r["failures"] for r in results),
        "requests": sum(r["requests"] for r in results),
        "verified_bodies": sum(r["verified_bodies"] for r in results),
        "origin_requests": sum(r["origin_requests"] for r in results),
        "unique_urls": sum(r["unique_urls"] for r in results),
        "time_to_configure_s": [r["time_to_configure_s"] for r in results],
        "p50_ms": percentile(seconds, 0.50) * 1000,
        "p95_ms": percentile(seconds, 0.95) * 1000,
        "p99_ms": percentile(seconds, 0.99) * 1000,
        "cache": cache,
        "hit_ratio": hit_ratio,
        "workdir": str(workdir),
    }
