"""The same storm against the peers Outpost is measured against: a squid hierarchy with soft
refresh, and nginx serving the same bytes as static files (the load generator's floor).

Small (60 nodes, 2 runs, one Locust process each) but real: Debian's squid and nginx on
loopback, in front of a real origin on a copy of the sample database.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from loadtest.runner import run_loadtest

NODES = 60


def test_storm_against_squid_and_nginx_static(
    sqlite_templates: dict[bool, Path], tmp_path: Path
) -> None:
    db = tmp_path / "conditions.sqlite"
    shutil.copyfile(sqlite_templates[True], db)

    report = run_loadtest(
        nodes=NODES,
        runs=2,
        node_proxies=2,
        processes=1,
        against=("squid", "nginx-static"),
        db=f"sqlite:///{db}",
        workdir=tmp_path / "lt",
        report_dir=tmp_path / "report",
    )

    squid, floor = report["against"]["squid"], report["against"]["nginx-static"]
    for summary in (report, squid, floor):
        assert summary["failures"] == 0
        for run in summary["runs"]:
            assert run["nodes_reported"] == NODES
            assert run["verified_bodies"] == NODES * run["payloads_per_node"] > 0
            assert run["cache_cpu_s"] > 0 and run["loadgen_cpu_s"] > 0  # every cache worked
    # squid has no flush: each node's resolve carried max-age=0, so squid revalidated with the
    # origin (304s), and the payloads stayed cached (no payload byte re-sent after run 1)
    first, second = squid["runs"]
    assert first["origin_payload_bytes"] > 0
    assert second["origin_not_modified"] >= 1
    assert second["origin_payload_bytes"] == 0
    assert squid["hit_ratio"]["node"] > 0  # from the squids' X-Cache lines
    # nginx serves copies: the origin sees nothing during the storm
    assert all(run["origin_requests"] == 0 for run in floor["runs"])
    comparison = report["comparison"]
    assert set(comparison["medians"]) == {"outpost", "squid", "nginx-static"}
    goals = {goal["goal"] for goal in comparison["goals"]}
    assert any("above the nginx floor" in goal for goal in goals)
    rows = (tmp_path / "report" / "summary.csv").read_text().splitlines()
    assert sorted({row.split(",")[0] for row in rows[1:]}) == ["nginx-static", "outpost", "squid"]
