"""Abusive Frontier SQL (security issue item 10) and what it costs a real origin, read from /proc.

Shared by the resource tests and `benchmarks/frontier_abuse.py`. The origin and PostgreSQL are
real processes; their memory is read from `/proc/PID/status` (VmHWM: peak resident set, reset
through `/proc/PID/clear_refs`; RssAnon: private memory) and their temporary files from the
origin's private temp directory (open, already unlinked SQLite temp files, seen through
`/proc/PID/fd`) and PostgreSQL's `base/pgsql_tmp`. A sampler thread polls what has no peak of
its own (temp files, PostgreSQL backends) every 20 ms.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import httpx

from support.fnkit import HEADERS, frontier_url
from support.servers import free_port, outpost_command, run_process

__all__ = [
    "Origin",
    "origin_process",
    "postgres_processes",
    "CROSS_JOIN_ORDER_BY",
    "DISTINCT_CROSS_JOIN",
    "HEX_CHAIN",
    "CONCAT_BLOBS",
    "Peaks",
    "clear_peak",
    "clear_tree_peak",
    "descendants",
    "parse_heavy_sql",
    "parse_heavy_url",
    "peak_rss",
    "rss",
    "sampling",
    "together",
    "tree_rss",
]

T = TypeVar("T")

MIB = 1024 * 1024

# memory: 4 MiB through HEX seven times is 512 MiB (SQLite; PostgreSQL has no hex())
HEX_CHAIN = (
    "SELECT length(hex(hex(hex(hex(hex(hex(hex(data)))))))) FROM payloads WHERE size = 4194304"
)
# memory within the expansion limit: 4 x 4 MiB per row, every pair of the largest payloads
CONCAT_BLOBS = (
    "SELECT length(a.data || b.data || a.data || b.data) FROM payloads a, payloads b"
    " WHERE a.size >= 1048576 AND b.size >= 1048576"
)
# the row cap counted after the fact: 221^3 rows sorted (answered: more than 10000 rows)
CROSS_JOIN_ORDER_BY = (
    "SELECT a.tag_name || b.tag_name || c.tag_name AS s FROM iovs a, iovs b, iovs c ORDER BY s DESC"
)
# temp disk: a sort of 10.8 million 192-byte keys that no LIMIT can shorten
DISTINCT_CROSS_JOIN = (
    "SELECT count(*) FROM (SELECT DISTINCT a.payload_hash || b.payload_hash || c.payload_hash"
    " AS s FROM iovs a, iovs b, iovs c) AS d"
)


def parse_heavy_sql(sql_bytes: int) -> str:
    """About `sql_bytes` of a long OR chain: the most parser work per byte that the guard takes."""
    terms = " OR ".join(["name = 'x'"] * max(1, (sql_bytes - 32) // 14))
    return f"SELECT count(*) FROM tags WHERE {terms}"  # noqa: S608 (sent, not run)


def parse_heavy_url(payloads: int = 64, sql_bytes: int = 16 * 1024) -> str:
    """One URL of `payloads` parse-heavy statements (zlib packs them to almost nothing)."""
    return frontier_url(*([parse_heavy_sql(sql_bytes)] * payloads))


def _status(pid: int) -> dict[str, str]:
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return {k: v.strip() for k, _, v in (line.partition(":") for line in lines)}


def _kib(value: str) -> int:
    return int(value.split()[0]) * 1024


def rss(pid: int, field_name: str = "VmRSS") -> int:
    """A memory figure of `pid` in bytes (VmRSS, VmHWM, RssAnon, …)."""
    return _kib(_status(pid)[field_name])


def peak_rss(pid: int) -> int:
    """VmHWM: the most resident memory `pid` has had since it started or `clear_peak`."""
    return rss(pid, "VmHWM")


def clear_peak(pid: int) -> None:
    """Reset VmHWM to the current resident set (`echo 5 > /proc/PID/clear_refs`)."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def tree_rss(pid: int, field_name: str = "VmRSS") -> int:
    """`rss` of `pid` and its descendants together (the origin and its SQL-checking processes)."""
    return sum(rss(p, field_name) for p in [pid, *descendants(pid)])


def clear_tree_peak(pid: int) -> None:
    for each in [pid, *descendants(pid)]:
        clear_peak(each)


def descendants(pid: int) -> list[int]:
    """`pid`'s children, grandchildren, … (PostgreSQL's backends are the postmaster's children)."""
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        children: list[int] = []
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{parent}/task").iterdir():
                children += [int(c) for c in (task / "children").read_text().split()]
        found += children
        todo += children
    return found


def _open_temp_bytes(pid: int, temp_dir: Path) -> int:
    """Disk held by files `pid` has open under `temp_dir` (SQLite unlinks its temp files)."""
    total = 0
    fds = Path(f"/proc/{pid}/fd")
    with contextlib.suppress(OSError):
        for fd in fds.iterdir():
            with contextlib.suppress(OSError):
                if os.readlink(fd).startswith(str(temp_dir)):
                    total += os.stat(fd).st_blocks * 512
    return total


def _tree_bytes(root: Path) -> int:
    total = 0
    for dirpath, _, files in os.walk(root):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.stat(Path(dirpath) / name).st_blocks * 512
    return total


@dataclass
class Peaks:
    """Peaks seen by the sampler, in bytes."""

    origin_temp: int = 0
    postgres_temp: int = 0
    postgres_anon: int = 0  # all PostgreSQL processes' private memory together
    postgres_anon_start: int = 0
    samples: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)

    @property
    def postgres_anon_growth(self) -> int:
        return max(0, self.postgres_anon - self.postgres_anon_start)


def _postgres_anon(postmaster: int) -> int:
    total = 0
    for pid in [postmaster, *descendants(postmaster)]:
        with contextlib.suppress(OSError, KeyError):
            total += rss(pid, "RssAnon")
    return total


@contextlib.contextmanager
def sampling(
    origin_pid: int,
    origin_temp: Path,
    postmaster: int | None = None,
    postgres_data: Path | None = None,
    interval: float = 0.02,
) -> Iterator[Peaks]:
    """Poll the origin's temp files and PostgreSQL's temp files and memory while the block runs."""
    peaks = Peaks()
    if postmaster is not None:
        peaks.postgres_anon_start = peaks.postgres_anon = _postgres_anon(postmaster)

    def poll() -> None:
        while not peaks._stop.wait(interval):
            peaks.samples += 1
            peaks.origin_temp = max(peaks.origin_temp, _open_temp_bytes(origin_pid, origin_temp))
            if postgres_data is not None:
                temp = _tree_bytes(postgres_data / "base" / "pgsql_tmp")
                peaks.postgres_temp = max(peaks.postgres_temp, temp)
            if postmaster is not None:
                peaks.postgres_anon = max(peaks.postgres_anon, _postgres_anon(postmaster))

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    try:
        yield peaks
    finally:
        peaks._stop.set()
        thread.join()


@dataclass(frozen=True)
class Origin:
    pid: int
    url: str
    temp: Path  # its TMPDIR and SQLITE_TMPDIR


@contextlib.contextmanager
def origin_process(db: str, root: Path, **settings: object) -> Iterator[Origin]:
    """A real `outpost origin` over `db`, warmed up, with its own temp directory under `root`.

    `settings` become `OUTPOST_ORIGIN_*` variables; other such variables are not passed on.
    """
    temp = root / "origin-tmp"
    temp.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("OUTPOST_")}
    env |= {"TMPDIR": str(temp), "SQLITE_TMPDIR": str(temp)}
    env |= {f"OUTPOST_ORIGIN_{k.upper()}": str(v) for k, v in settings.items()}
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = outpost_command("origin", "--db", db, "--port", str(port), "--log-level", "warning")
    ready = f"{url}/_outpost/healthz"
    with run_process(command, root / "origin.log", ready_url=ready, env=env) as process:
        with httpx.Client(base_url=url, timeout=60, trust_env=False) as client:
            for _ in range(10):  # imports, pools, the first Frontier parse
                client.get("/v1/globaltags").raise_for_status()
                client.get(frontier_url("SELECT count(*) FROM tags"), headers=HEADERS)
        yield Origin(process.pid, url, temp)


def postgres_processes(url: str) -> tuple[int, Path]:
    """(postmaster PID, data directory) of the PostgreSQL server behind `url` (on this host)."""
    import psycopg

    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        row = conn.execute("SHOW data_directory").fetchone()
    assert row is not None
    data = Path(str(row[0]))
    return int((data / "postmaster.pid").read_text().split()[0]), data


def together(function: Callable[[], T], count: int) -> list[T]:
    """`function()` called `count` times at once, each in its own thread; their results."""
    results: list[T] = []
    threads = [threading.Thread(target=lambda: results.append(function())) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results
