"""Abusive Frontier SQL against a real `outpost origin` process, on SQLite and PostgreSQL: what it
costs is read from /proc (peak RSS, temp files, PostgreSQL's private memory), bounded in time.

The queries are those of the security report (support.abuse); without the limits, the HEX chain
took the origin to 1.65 GB on SQLite, the ORDER BY over a cross join to 1.1 GB on PostgreSQL,
and 40 heavy queries made `/v1/globaltags` wait for the statement timeout.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
from support.abuse import (
    CONCAT_BLOBS,
    CROSS_JOIN_ORDER_BY,
    DISTINCT_CROSS_JOIN,
    HEX_CHAIN,
    MIB,
    clear_tree_peak,
    origin_process,
    postgres_processes,
    sampling,
    together,
    tree_rss,
)
from support.fnkit import HEADERS, frontier_url, parse_answer

LIMIT = 256 * MIB


def outcome(response: httpx.Response) -> str:
    """ "ok", or the payload's error: anything but an HTTP 200 envelope fails the test."""
    assert response.status_code == 200, response.text[:300]
    payload = parse_answer(response.content).payloads[0]
    return str(payload.message) if payload.error else "ok"


def at_once(url: str, path: str, count: int) -> list[str]:
    """The outcomes of `count` requests for `path` sent together."""

    def one() -> str:
        with httpx.Client(base_url=url, timeout=60, trust_env=False) as client:
            return outcome(client.get(path, headers=HEADERS))

    return together(one, count)


def test_abusive_sql_stays_within_the_memory_and_temp_limits(
    sample_db: str, tmp_path: Path
) -> None:
    on_postgres = sample_db.startswith("postgresql")
    postmaster, data = postgres_processes(sample_db) if on_postgres else (None, None)
    with origin_process(sample_db, tmp_path, statement_timeout_ms=15_000) as origin:
        before = tree_rss(origin.pid)  # the origin and its SQL-checking processes
        clear_tree_peak(origin.pid)
        answers: dict[str, str] = {}
        with (
            sampling(origin.pid, origin.temp, postmaster, data) as peaks,
            httpx.Client(base_url=origin.url, timeout=60, trust_env=False) as client,
        ):
            for sql in (HEX_CHAIN, CONCAT_BLOBS, CROSS_JOIN_ORDER_BY):
                answers[sql] = outcome(client.get(frontier_url(sql), headers=HEADERS))
            distinct = at_once(origin.url, frontier_url(DISTINCT_CROSS_JOIN), 2)  # both slots
        growth = tree_rss(origin.pid, "VmHWM") - before
    assert peaks.samples > 0
    assert growth <= LIMIT, f"origin peak RSS grew {growth / MIB:.0f} MiB"
    assert peaks.origin_temp <= LIMIT, f"origin temp files {peaks.origin_temp / MIB:.0f} MiB"
    assert peaks.postgres_anon_growth <= LIMIT, f"{peaks.postgres_anon_growth / MIB:.0f} MiB"
    assert peaks.postgres_temp <= LIMIT, f"PostgreSQL temp files {peaks.postgres_temp / MIB:.0f}"
    assert "expands a value 128 times" in answers[HEX_CHAIN]
    assert answers[CONCAT_BLOBS] == "ok"
    assert "more than 10000 rows" in answers[CROSS_JOIN_ORDER_BY] or (
        "statement timeout" in answers[CROSS_JOIN_ORDER_BY]
    )
    expected = "temp_file_limit" if on_postgres else "more memory than this server gives"
    assert all(expected in answer for answer in distinct), distinct


def test_v1_reads_do_not_wait_behind_40_heavy_frontier_queries(
    sample_db: str, tmp_path: Path
) -> None:
    timeout_ms = 5000
    with origin_process(sample_db, tmp_path, statement_timeout_ms=timeout_ms) as origin:
        stop = threading.Event()
        statuses: list[int] = []
        retry_after: set[str] = set()

        def attack() -> None:
            with httpx.Client(base_url=origin.url, timeout=60, trust_env=False) as client:
                while not stop.is_set():
                    response = client.get(frontier_url(CROSS_JOIN_ORDER_BY), headers=HEADERS)
                    statuses.append(response.status_code)
                    retry_after.add(response.headers.get("retry-after", ""))

        attackers = [threading.Thread(target=attack) for _ in range(40)]
        for thread in attackers:
            thread.start()
        latencies = []
        try:
            time.sleep(1)  # the heavy queries hold every slot
            with httpx.Client(base_url=origin.url, timeout=30, trust_env=False) as client:
                deadline = time.monotonic() + 6
                while time.monotonic() < deadline:
                    started = time.monotonic()
                    assert client.get("/v1/globaltags").status_code == 200
                    latencies.append(time.monotonic() - started)
        finally:
            stop.set()
            for thread in attackers:
                thread.join()
    assert max(latencies) < timeout_ms / 1000 / 2, max(latencies)  # never behind a heavy query
    assert set(statuses) <= {200, 503}
    assert 503 in statuses and "1" in retry_after  # turned away at once, told when to retry
