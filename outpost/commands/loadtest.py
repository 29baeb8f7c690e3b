"""`outpost loadtest`: a run-start storm of simulated HLT nodes (Locust) against a local tree.

    outpost loadtest [--nodes 2000] [--runs 3] [--node-proxies 4] [--processes 2]
                     [--spawn-rate N] [--db URL] [--globaltag GT] [--json]

Brings up origin, site proxy and node proxies on loopback (`outpost up`), runs Locust headless
with one user per farm node (spread over `--processes` worker processes under a master, all on
loopback; `--processes 1` runs one plain Locust process), flushes the tree before each run as run
control does, and reports time to configure, node latency percentiles, failures, verified bodies,
hit ratio per tier and origin requests per unique URL. Exit status 1 if any node saw a failure.
"""

from __future__ import annotations

import argparse
from typing import Any

import orjson
from rich.table import Table

from outpost.commands.runcontrol import make_console

__all__ = ["add_parser"]


def add_parser(commands: Any) -> None:
    parser = commands.add_parser("loadtest", help="simulate run starts of many HLT nodes (Locust)")
    parser.add_argument("--nodes", type=int, default=2000, help="simulated HLT nodes (2000)")
    parser.add_argument("--runs", type=int, default=3, help="run starts to simulate (3)")
    parser.add_argument("--node-proxies", type=int, default=4, help="node proxies (4)")
    parser.add_argument(
        "--processes", type=int, default=2, help="Locust worker processes (2; 1: no master)"
    )
    parser.add_argument("--spawn-rate", type=int, help="users started per second (all at once)")
    parser.add_argument("--db", help="database URL (default sqlite:///./outpost.sqlite)")
    parser.add_argument("--globaltag", default="OUTPOST_HLT_2026_V1", help="global tag to fetch")
    parser.add_argument("--run-timeout", type=float, default=300.0, help="seconds per run")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(handler=_loadtest)


def _loadtest(args: argparse.Namespace) -> int:
    from loadtest.runner import run_loadtest

    report = run_loadtest(
        nodes=args.nodes,
        runs=args.runs,
        node_proxies=args.node_proxies,
        spawn_rate=args.spawn_rate,
        processes=args.processes,
        db=args.db,
        globaltag=args.globaltag,
        run_timeout=args.run_timeout,
    )
    if args.json:
        print(orjson.dumps(report).decode())
    else:
        _print_report(report)
    return 0 if report["failures"] == 0 else 1


def _print_report(report: dict[str, Any]) -> None:
    console = make_console()
    table = Table(title=f"{report['nodes']} HLT nodes, {report['node_proxies']} node proxies")
    columns = (
        "run",
        "time to configure",
        "p50 node",
        "p95 node",
        "p99 node",
        "verified",
        "failures",
        "origin req / unique URL",
    )
    for column in columns:
        table.add_column(column)
    for run in report["runs"]:
        table.add_row(
            str(run["run"]),
            f"{run['time_to_configure_s']:.2f} s",
            f"{run['node_p50_ms']:.0f} ms",
            f"{run['node_p95_ms']:.0f} ms",
            f"{run['node_p99_ms']:.0f} ms",
            str(run["verified_bodies"]),
            str(run["failures"]),
            f"{run['origin_requests']} / {run['unique_urls']}",
        )
    console.print(table)
    tiers = Table(title="Cache-Status by tier")
    for column in ("tier", "hits", "misses", "hit ratio"):
        tiers.add_column(column)
    for tier, counts in report["cache"].items():
        ratio = report["hit_ratio"].get(tier, 0.0)
        tiers.add_row(tier, str(counts["hit"]), str(counts["miss"]), f"{ratio:.1%}")
    console.print(tiers)
    console.print(
        f"{report['requests']} requests, {report['verified_bodies']} bodies verified, "
        f"{report['failures']} failures; origin answered {report['origin_requests']} requests "
        f"for {report['unique_urls']} unique URLs; p99 node {report['p99_ms']:.0f} ms"
    )
