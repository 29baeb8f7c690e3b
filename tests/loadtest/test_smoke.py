"""Smoke test of the load test: a small run-start storm through a real local tree.

200 simulated HLT nodes (Locust users, run by 2 worker processes under a headless master) behind
2 node proxies, 2 runs, on a copy of the sample database. Takes about 20 s on a 2-core machine.
Checks what the issue promises: no failures, every payload body verified against its hash by
every node, and the origin answering at most one request per unique URL of a run (the tree
absorbs the rest).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from loadtest.runner import cache_status_tiers, run_loadtest, x_cache_tiers

NODES = 200
RUNS = 2
PROCESSES = 2


def test_run_start_storm(sqlite_templates: dict[bool, Path], tmp_path: Path) -> None:
    db = tmp_path / "conditions.sqlite"
    shutil.copyfile(sqlite_templates[True], db)

    report = run_loadtest(
        nodes=NODES,
        runs=RUNS,
        node_proxies=2,
        processes=PROCESSES,
        db=f"sqlite:///{db}",
        workdir=tmp_path / "lt",
        report_dir=tmp_path / "report",
    )

    assert report["failures"] == 0
    assert len(report["time_to_configure_s"]) == RUNS
    assert report["p99_ms"] > 0
    for run in report["runs"]:
        assert run["nodes_reported"] == NODES
        assert run["flush_acked"] == 3  # site + 2 node proxies
        assert run["payloads_per_node"] > 0
        assert run["verified_bodies"] == NODES * run["payloads_per_node"]
        assert run["unique_urls"] == run["payloads_per_node"] + 1  # payloads + the resolve URL
        assert run["origin_requests"] <= run["unique_urls"]
    assert report["verified_bodies"] == sum(r["verified_bodies"] for r in report["runs"])
    assert report["requests"] == NODES * sum(r["unique_urls"] for r in report["runs"])
    assert report["origin_requests"] <= report["unique_urls"]
    assert report["cache"]["node"]["hit"] > 0
    second = report["runs"][1]  # after a flush: the payloads are immutable, never re-sent
    assert second["origin_payload_bytes"] == 0
    assert 0 < second["request_p50_ms"] <= second["request_p99_ms"]
    # the table and the plot are written
    rows = (tmp_path / "report" / "summary.csv").read_text().splitlines()
    assert rows[0].startswith("target,run,nodes,time_to_configure_s")
    assert [row.split(",")[:2] for row in rows[1:]] == [["outpost", "500"], ["outpost", "501"]]
    assert (tmp_path / "report" / "loadtest.png").read_bytes().startswith(b"\x89PNG")
    # every worker process ran users and wrote its own lines; node names are unique across them
    outs = sorted((tmp_path / "lt").glob("nodes.jsonl.*"))
    assert len(outs) == PROCESSES
    ready = [line for out in outs for line in out.read_text().splitlines() if '"ready"' in line]
    assert len(ready) == NODES
    assert len(set(ready)) == NODES


def test_cache_status_tiers() -> None:
    header = "site; fwd=miss; fwd-status=200; stored, node-1; hit; ttl=299"
    assert cache_status_tiers(header) == {"node": "hit"}
    header = "site; hit; ttl=10, node-1; fwd=miss; fwd-status=200; stored"
    assert cache_status_tiers(header) == {"node": "miss", "site": "hit"}
    assert cache_status_tiers("node-2; fwd=stale") == {"node": "miss"}
    assert cache_status_tiers(None) == {}


def test_x_cache_tiers() -> None:
    assert x_cache_tiers(["MISS from squid-site", "HIT from squid-node-1"]) == {"node": "hit"}
    assert x_cache_tiers("HIT from squid-site, MISS from squid-node-2") == {
        "node": "miss",
        "site": "hit",
    }
    assert x_cache_tiers(None) == {}
