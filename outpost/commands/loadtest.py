"""`outpost loadtest`: run-start storms of simulated HLT nodes (Locust), beside squid if asked.

    outpost loadtest [--nodes 2000] [--runs 3] [--node-proxies 4] [--processes 2]
                     [--spawn-rate 1000] [--against squid] [--against nginx-static]
                     [--proxy-server uvicorn|granian] [--redis URL] [--db URL]
                     [--report-dir loadtest-report] [--globaltag GT] [--json]

Brings up origin, site proxy and node proxies on loopback, runs Locust headless with one user
per farm node (spread over `--processes` worker processes under a master, all on loopback;
`--processes 1` runs one plain Locust process), flushes the tree before each run as run control
does, and reports time to configure, node and request latency percentiles, failures, verified
bodies, hit ratio per tier and what reached the origin. With `--against squid` the same storm
then runs against a squid hierarchy (soft refresh instead of a flush) and, unless
`--no-floor`, against nginx serving the same bytes as static files (the load generator's
floor); a comparison table with the ratios follows. Writes `summary.csv` and `loadtest.png`
into `--report-dir`. Exit status 1 if any node of any target saw a failure.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import orjson
from rich.table import Table

from outpost.commands.runcontrol import make_console
from proxy.settings import SERVERS

__all__ = ["add_parser"]

PEERS = ("squid", "nginx-static")


def add_parser(commands: Any) -> None:
    parser = commands.add_parser("loadtest", help="simulate run starts of many HLT nodes (Locust)")
    parser.add_argument("--nodes", type=int, default=2000, help="simulated HLT nodes (2000)")
    parser.add_argument("--runs", type=int, default=3, help="run starts to simulate (3)")
    parser.add_argument("--node-proxies", type=int, default=4, help="node caches (4)")
    parser.add_argument(
        "--processes", type=int, default=2, help="Locust worker processes (2; 1: no master)"
    )
    parser.add_argument("--spawn-rate", type=int, default=1000, help="users started per second")
    parser.add_argument(
        "--against",
        action="append",
        choices=PEERS,
        default=[],
        help="also run the storm against this peer, after Outpost (repeatable)",
    )
    parser.add_argument(
        "--no-floor",
        action="store_true",
        help="with --against squid, do not also measure the nginx-static floor",
    )
    parser.add_argument(
        "--report-dir",
        type=Path,
        default=Path("loadtest-report"),
        help="where summary.csv and loadtest.png go (./loadtest-report)",
    )
    parser.add_argument(
        "--proxy-server",
        choices=SERVERS,
        default="uvicorn",
        help="HTTP server under Outpost's proxies (uvicorn, the faster for hits; or granian)",
    )
    parser.add_argument("--redis", help="Redis URL for the site proxy's shared tier (none)")
    parser.add_argument("--db", help="database URL (default sqlite:///./outpost.sqlite)")
    parser.add_argument("--globaltag", default="OUTPOST_HLT_2026_V1", help="global tag to fetch")
    parser.add_argument("--run-timeout", type=float, default=300.0, help="seconds per run")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(handler=_loadtest)


def _loadtest(args: argparse.Namespace) -> int:
    from loadtest.runner import run_loadtest

    against = list(args.against)
    if "squid" in against and "nginx-static" not in against and not args.no_floor:
        against.append("nginx-static")
    report = run_loadtest(
        nodes=args.nodes,
        runs=args.runs,
        node_proxies=args.node_proxies,
        spawn_rate=args.spawn_rate,
        processes=args.processes,
        against=against,
        proxy_server=args.proxy_server,
        redis=args.redis,
        db=args.db,
        globaltag=args.globaltag,
        run_timeout=args.run_timeout,
        report_dir=args.report_dir,
    )
    if args.json:
        print(orjson.dumps(report).decode())
    else:
        _print_report(report)
    peers = report.get("against", {}).values()
    failures = report["failures"] + sum(peer["failures"] for peer in peers)
    return 0 if failures == 0 else 1


def _mib(n: float) -> str:
    return f"{n / 2**20:.1f} MiB"


def _print_target(console: Any, report: dict[str, Any]) -> None:
    nodes, caches = report["nodes"], report["node_proxies"]
    table = Table(title=f"{report['target']}: {nodes} HLT nodes, {caches} node caches")
    columns = (
        "run",
        "time to configure",
        "node p50 / p99",
        "request p50 / p99",
        "verified",
        "failures",
        "node hits",
        "origin req (304) / unique URLs",
        "origin bytes (payloads)",
        "CPU caches / Locust",
    )
    for column in columns:
        table.add_column(column)
    for run in report["runs"]:
        node_hits = run["hit_ratio"].get("node")
        table.add_row(
            str(run["run"]),
            f"{run['time_to_configure_s']:.2f} s",
            f"{run['node_p50_ms']:.0f} / {run['node_p99_ms']:.0f} ms",
            f"{run['request_p50_ms']:.1f} / {run['request_p99_ms']:.0f} ms",
            str(run["verified_bodies"]),
            str(run["failures"]),
            "-" if node_hits is None else f"{node_hits:.1%}",
            f"{run['origin_requests']} ({run['origin_not_modified']}) / {run['unique_urls']}",
            f"{_mib(run['origin_bytes'])} ({_mib(run['origin_payload_bytes'])})",
            f"{run['cache_cpu_s']:.1f} / {run['loadgen_cpu_s']:.1f} s",
        )
    console.print(table)


def _print_comparison(console: Any, comparison: dict[str, Any]) -> None:
    medians = comparison["medians"]
    table = Table(title="Medians over the runs (after a flush: every run but the first)")
    table.add_column("")
    for name in medians:
        table.add_column(name)
    rows = (
        ("time to configure", "time_to_configure_s", "{:.2f} s"),
        ("node p50", "node_p50_ms", "{:.0f} ms"),
        ("node p99", "node_p99_ms", "{:.0f} ms"),
        ("request p99", "request_p99_ms", "{:.0f} ms"),
        ("origin requests after a flush", "origin_requests_after_flush", "{}"),
        ("origin bytes after a flush", "origin_bytes_after_flush", "{}"),
        ("payload bytes after a flush", "origin_payload_bytes_after_flush", "{}"),
        ("failures", "failures", "{}"),
        ("CPU of the caches", "cache_cpu_s", "{:.1f} s"),
        ("CPU of Locust", "loadgen_cpu_s", "{:.1f} s"),
    )
    for label, key, form in rows:
        table.add_row(label, *(form.format(medians[name][key]) for name in medians))
    console.print(table)
    if "goals" in comparison:
        goals = Table(title="Outpost against squid")
        for column in ("goal", "measured", "met"):
            goals.add_column(column)
        for goal in comparison["goals"]:
            value = goal["value"]
            shown = "n/a" if value is None else f"{value:.3g}"
            goals.add_row(goal["goal"], shown, "yes" if goal["met"] else "NO")
        console.print(goals)


def _print_report(report: dict[str, Any]) -> None:
    console = make_console()
    _print_target(console, report)
    for peer in report.get("against", {}).values():
        _print_target(console, peer)
    tiers = Table(title="Outpost: Cache-Status by tier")
    for column in ("tier", "hits", "misses", "hit ratio"):
        tiers.add_column(column)
    for tier, counts in report["cache"].items():
        ratio = report["hit_ratio"].get(tier, 0.0)
        tiers.add_row(tier, str(counts["hit"]), str(counts["miss"]), f"{ratio:.1%}")
    console.print(tiers)
    if "comparison" in report:
        _print_comparison(console, report["comparison"])
    console.print(
        f"Outpost: {report['requests']} requests, {report['verified_bodies']} bodies verified, "
        f"{report['failures']} failures; origin answered {report['origin_requests']} requests "
        f"for {report['unique_urls']} unique URLs; p99 node {report['p99_ms']:.0f} ms"
    )
    for name, path in report.get("files", {}).items():
        console.print(f"{name}: {path}")
