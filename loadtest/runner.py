"""Run run-start storms: a target on loopback, Locust headless against it, run control between.

    run_loadtest(nodes=2000, runs=3, node_proxies=4, processes=2, against=("squid",))

Outpost first, then each peer of `against` (`squid`, `nginx-static`; see `targets`), back to
back on the same machine and the same database. For each run: run control's part (Outpost: flush
the tree and wait for every acknowledgement; nginx-static: copy the run's files), note the
origin's counters, record `t0` and write the run number to the run file the `HLTNode` users poll,
wait until every node reported the run (bounded), and read the origin's counters again.
With `processes=1` Locust runs as one headless process; with `processes=P > 1` it runs
distributed on loopback: one headless master (`--expect-workers P`, bound to 127.0.0.1 on a free
port) that only hands out users, and P worker processes that run them, each a process (and
process group) of its own, all stopped at the end. Every Locust process writes its JSON lines to
a file of its own (`nodes.jsonl.<pid>`, see the locustfile); the runner reads them together.
The figures come from `stats`, the CSV and the plot from `report`.

The helpers the Locust users share with the runner (`read_run_file`, `cache_tiers`) live
here, not in the locustfile, so that importing them never imports Locust (which monkey-patches
the standard library with gevent on import).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import httpx
import orjson

from outpost.client.answers import decode_resolution
from outpost.demo import origin_counters
from outpost.localstack import free_port
from outpost.urls import Payload, Resolve

from .cpu import tree_cpu_seconds
from .report import write_report
from .stats import compare, run_result, summarise
from .targets import TARGETS, LoadTestError, Target, open_target

__all__ = [
    "FIRST_RUN",
    "LOCUSTFILE",
    "TIERS",
    "LoadTestError",
    "cache_status_tiers",
    "cache_tiers",
    "read_run_file",
    "run_loadtest",
    "x_cache_tiers",
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


def _entries(header: str | list[str] | None) -> list[str]:
    """A header's comma-separated entries; geventhttpclient gives a list for repeated lines."""
    if not header:
        return []
    joined = header if isinstance(header, str) else ",".join(header)
    return [entry.strip() for entry in joined.split(",") if entry.strip()]


def cache_status_tiers(header: str | list[str] | None) -> dict[str, str]:
    """`{"node": "hit"|"miss", "site": …}` from a Cache-Status header (RFC 9211).

    The last entry is the cache nearest the client (the node proxy), the one before it the
    site proxy; an entry is a hit when it carries the bare `hit` parameter. A tier above a hit
    is not counted: that request never reached it.
    """
    result: dict[str, str] = {}
    for tier, entry in zip(TIERS, reversed(_entries(header)), strict=False):
        params = [param.strip() for param in entry.split(";")[1:]]
        result[tier] = "hit" if "hit" in params else "miss"
        if result[tier] == "hit":
            break  # a hit was served here: the entries above it are replayed from the store
    return result


def x_cache_tiers(header: str | list[str] | None) -> dict[str, str]:
    """The same from squid's `X-Cache: HIT from <name>` lines (each squid appends its own, so
    the last line is the node squid's)."""
    result: dict[str, str] = {}
    for tier, entry in zip(TIERS, reversed(_entries(header)), strict=False):
        result[tier] = "hit" if entry.upper().startswith("HIT") else "miss"
        if result[tier] == "hit":
            break
    return result


def cache_tiers(
    cache_status: str | list[str] | None, x_cache: str | list[str] | None
) -> dict[str, str]:
    """Hits and misses by tier from whichever of the two headers the caches sent."""
    return cache_status_tiers(cache_status) or x_cache_tiers(x_cache)


class _NodeLines:
    """The JSON lines of every Locust process's `<prefix>.<pid>` file, read incrementally:
    each poll parses only what was appended since the last one (a line still being written
    waits for its newline), so watching thousands of nodes costs the storm no CPU to speak of."""

    def __init__(self, prefix: Path) -> None:
        self.prefix = prefix
        self.offsets: dict[Path, int] = {}
        self.ready = 0
        self.runs: dict[int, list[dict[str, Any]]] = {}

    def poll(self) -> None:
        for path in sorted(self.prefix.parent.glob(self.prefix.name + ".*")):
            offset = self.offsets.get(path, 0)
            try:
                with path.open("rb") as lines:
                    lines.seek(offset)
                    chunk = lines.read()
            except OSError:
                continue
            complete = chunk.rfind(b"\n") + 1
            self.offsets[path] = offset + complete
            for raw in chunk[:complete].splitlines():
                with contextlib.suppress(orjson.JSONDecodeError):
                    self._add(orjson.loads(raw))

    def _add(self, line: dict[str, Any]) -> None:
        if line.get("event") == "ready":
            self.ready += 1
        elif line.get("event") == "run":
            self.runs.setdefault(line["run"], []).append(line)

    def reports(self, run: int) -> list[dict[str, Any]]:
        return self.runs.get(run, [])


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

    def pids(self) -> list[int]:
        return [process.pid for process, _ in self.processes]

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
        time.sleep(0.1)


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
    spawn_rate: int = 1000,
    processes: int = 2,
    *,
    against: Sequence[str] = (),
    proxy_server: str = "uvicorn",
    redis: str | None = None,
    db: str | None = None,
    globaltag: str = DEFAULT_GLOBALTAG,
    run_timeout: float = 300.0,
    spawn_timeout: float = 120.0,
    workdir: Path | None = None,
    report_dir: Path | None = None,
) -> dict[str, Any]:
    """Simulate `runs` run starts of `nodes` HLT nodes behind `node_proxies` node proxies,
    the nodes run by `processes` Locust worker processes (1: one plain headless process);
    first against Outpost, then against each target named in `against`, back to back.

    Returns Outpost's summary, with `against` (each peer's summary) and `comparison` when peers
    ran; writes `summary.csv` and `loadtest.png` into `report_dir` when given.
    """
    if nodes < 1 or runs < 1 or node_proxies < 1 or processes < 1 or spawn_rate < 1:
        raise ValueError("nodes, runs, node_proxies, processes and spawn_rate must be at least 1")
    names = ["outpost", *dict.fromkeys(name for name in against if name != "outpost")]
    for name in names:
        if name not in TARGETS:
            raise ValueError(f"unknown target {name!r}: expected one of {', '.join(TARGETS)}")
    work = workdir or Path(tempfile.mkdtemp(prefix="outpost-loadtest-"))
    work.mkdir(parents=True, exist_ok=True)
    summaries: dict[str, dict[str, Any]] = {}
    timelines: dict[str, list[list[tuple[float, float, str]]]] = {}
    for name in names:
        target_work = work / name if len(names) > 1 else work
        with open_target(
            name,
            node_proxies=node_proxies,
            proxy_server=proxy_server,
            redis=redis,
            db=db,
            globaltag=globaltag,
            work=target_work,
        ) as target:
            storm = _Storm(
                target,
                nodes=nodes,
                processes=processes,
                spawn_rate=spawn_rate,
                globaltag=globaltag,
                run_timeout=run_timeout,
                work=target_work,
            )
            results, timelines[name] = storm.run(runs, spawn_timeout)
        summaries[name] = summarise(
            results, target=name, nodes=nodes, node_proxies=node_proxies, workdir=work
        )
    report = dict(summaries["outpost"])
    if len(names) > 1:
        report["against"] = {name: summaries[name] for name in names[1:]}
        report["comparison"] = compare(summaries)
    if report_dir is not None:
        report["files"] = write_report(report_dir, summaries, timelines)
    return report


class _Storm:
    """One target's load test: Locust started once, then one run after another."""

    def __init__(
        self,
        target: Target,
        *,
        nodes: int,
        processes: int,
        spawn_rate: int,
        globaltag: str,
        run_timeout: float,
        work: Path,
    ) -> None:
        self.target = target
        self.nodes = nodes
        self.processes = processes
        self.spawn_rate = spawn_rate
        self.globaltag = globaltag
        self.run_timeout = run_timeout
        self.run_file, self.out = work / "run", work / "nodes.jsonl"
        self.work = work
        self.locust = _Locust()
        self.lines = _NodeLines(self.out)

    def run(
        self, runs: int, spawn_timeout: float
    ) -> tuple[list[dict[str, Any]], list[list[tuple[float, float, str]]]]:
        self.run_file.write_text(f"0 {time.time()}")
        for stale in self.work.glob(self.out.name + ".*"):
            stale.unlink()  # lines of an earlier load test in the same workdir
        try:
            self._start_locust()
            _wait_until(
                self._all_ready,
                spawn_timeout,
                self.locust,
                f"not all {self.nodes} users spawned",
            )
            done = [self._one_run(FIRST_RUN + i) for i in range(runs)]
        finally:
            self.locust.stop()
        return [result for result, _ in done], [timeline for _, timeline in done]

    def _all_ready(self) -> bool:
        self.lines.poll()
        return self.lines.ready >= self.nodes

    def _start_locust(self) -> None:
        urls = self.target.node_urls
        env = {
            **os.environ,
            "OUTPOST_LOADTEST_NODES": ",".join(urls),
            "OUTPOST_LOADTEST_RUN_FILE": str(self.run_file),
            "OUTPOST_LOADTEST_OUT": str(self.out),
            "OUTPOST_LOADTEST_GLOBALTAG": self.globaltag,
            "OUTPOST_LOADTEST_SOFT_REFRESH": "1" if self.target.soft_refresh else "0",
        }
        base = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--host", urls[0]]
        base += ["--loglevel", "WARNING"]
        head = ["--headless", "-u", str(self.nodes), "-r", str(self.spawn_rate)]
        head += ["--only-summary", "--stop-timeout", "10"]
        log = self.work / "locust.log"
        if self.processes == 1:
            self.locust.start(base + head, log, env, self.work)
            return
        port = str(free_port())
        master = ["--master", "--expect-workers", str(self.processes)]
        master += ["--master-bind-host", "127.0.0.1", "--master-bind-port", port]
        self.locust.start(base + head + master, log, env, self.work)
        worker = ["--worker", "--master-host", "127.0.0.1", "--master-port", port]
        for k in range(self.processes):
            log = self.work / f"locust-worker-{k + 1}.log"
            self.locust.start(base + worker, log, env, self.work)

    def _one_run(self, run: int) -> tuple[dict[str, Any], list[tuple[float, float, str]]]:
        acked = self.target.before_run(run)
        origin_url = self.target.origin_url
        before = origin_counters(origin_url)
        caches, locust = self.target.cache_pids(), self.locust.pids()
        cpu_before = tree_cpu_seconds(caches), tree_cpu_seconds(locust)
        t0 = time.time()
        tmp = self.run_file.with_suffix(".tmp")
        tmp.write_text(f"{run} {t0}")
        tmp.replace(self.run_file)  # atomic: a node never reads half a line

        def reports() -> list[dict[str, Any]]:
            self.lines.poll()
            return self.lines.reports(run)

        _wait_until(
            lambda: len(reports()) >= self.nodes,
            self.run_timeout,
            self.locust,
            f"not all nodes finished run {run}",
        )
        after = origin_counters(origin_url)
        cache_cpu = tree_cpu_seconds(caches) - cpu_before[0]
        loadgen_cpu = tree_cpu_seconds(locust) - cpu_before[1]
        lines = reports()
        urls = _unique_urls(origin_url, self.globaltag, run)
        timeline = [(e[0], e[1], e[2]) for line in lines for e in line["timeline"]]
        result = run_result(
            run,
            t0,
            acked,
            lines,
            before,
            after,
            len(urls),
            cache_cpu_s=cache_cpu,
            loadgen_cpu_s=loadgen_cpu,
        )
        return result, timeline
