"""`outpost up` and `outpost demo`: the whole hierarchy on this machine.

    outpost up   [--nodes 4] [--db URL] [--redis URL] [--json]   origin, site proxy, N nodes
    outpost demo [--farm-nodes 300] [--nodes 4] [--runs 2]       up + a simulated run start

`up` runs until Ctrl-C or SIGTERM, then stops every tier. `demo` brings the stack up, flushes
it before each run as run control would, lets a few hundred simulated farm nodes fetch the run
through their node proxies, prints hit ratio per tier, origin requests per unique object and
latency percentiles, and stops everything.
"""

from __future__ import annotations

import argparse
import signal
import threading
from types import FrameType
from typing import Any

import orjson
from rich.table import Table

from outpost.commands.runcontrol import make_console
from outpost.localstack import LocalStack

__all__ = ["add_parser"]


def _stack_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--nodes", type=int, default=4, help="node proxies (default 4)")
    parser.add_argument("--db", help="database URL (default sqlite:///./outpost.sqlite)")
    parser.add_argument("--redis", help="Redis URL: adds the site's shared cache tier")
    parser.add_argument("--server", choices=("uvicorn", "granian"), default="uvicorn")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def add_parser(commands: Any) -> None:
    up = commands.add_parser("up", help="run origin, site proxy and node proxies on loopback")
    _stack_options(up)
    up.set_defaults(handler=_up)
    demo = commands.add_parser("demo", help="up, then simulate a run start of many farm nodes")
    _stack_options(demo)
    demo.add_argument("--farm-nodes", type=int, default=300, help="simulated farm nodes")
    demo.add_argument("--runs", type=int, default=2, help="run starts to simulate")
    demo.add_argument("--globaltag", default="OUTPOST_HLT_2026_V1", help="global tag to fetch")
    demo.set_defaults(handler=_demo)


def _stack(args: argparse.Namespace) -> LocalStack:
    return LocalStack(nodes=args.nodes, db=args.db, redis=args.redis, server=args.server)


def _stop_on_signals() -> threading.Event:
    """An event set by SIGTERM or SIGINT from now on. Installed before the stack is described:
    whoever reads the description may signal at once, and must not find the default handler
    (which would end the process without stopping the tiers)."""
    stop = threading.Event()

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    return stop


def _up(args: argparse.Namespace) -> int:
    stop = _stop_on_signals()
    with _stack(args) as stack:
        if args.json:
            print(orjson.dumps(stack.describe()).decode(), flush=True)
        else:
            console = make_console()
            table = Table(title="outpost up: stopping with Ctrl-C")
            table.add_column("tier")
            table.add_column("role")
            table.add_column("url")
            for tier in stack.tiers:
                table.add_row(tier.name, tier.role, tier.url)
            console.print(table)
            console.print("A farm node behind node-1 would use:")
            for name, value in stack.environment().items():
                console.print(f"  export {name}={value}")
            console.print(f"logs: {stack.state}")
        stop.wait()
    return 0


def _demo(args: argparse.Namespace) -> int:
    from outpost.demo import run_demo

    with _stack(args) as stack:
        report = run_demo(stack, args.globaltag, farm_nodes=args.farm_nodes, runs=args.runs)
    if args.json:
        print(orjson.dumps(report).decode())
    else:
        _print_report(report)
    return 0 if report["failures"] == 0 else 1


def _print_report(report: dict[str, Any]) -> None:
    console = make_console()
    runs = Table(title=f"{report['farm_nodes']} farm nodes, {report['node_proxies']} node proxies")
    for column in ("run", "flush acked", "time to configure", "p50 node", "p99 node", "failures"):
        runs.add_column(column)
    for run in report["runs"]:
        runs.add_row(
            str(run["run"]),
            str(run["flush_acked"]),
            f"{run['time_to_configure_s']:.2f} s",
            f"{run['node_p50_ms']:.0f} ms",
            f"{run['node_p99_ms']:.0f} ms",
            str(run["failures"]),
        )
    console.print(runs)
    tiers = Table(title="hit ratio by tier")
    tiers.add_column("cache")
    tiers.add_column("hit ratio")
    for name, ratio in report["hit_ratio"].items():
        tiers.add_row(name, f"{ratio:.1%}")
    console.print(tiers)
    origin = report["origin"]
    console.print(
        f"origin: {origin['requests']} requests for {origin['unique_urls']} unique URLs "
        f"({origin['requests_per_unique_url']:.2f} per URL), "
        f"{origin['not_modified']} answered 304; "
        f"{report['verified_payloads']} payloads verified, {report['failures']} failures"
    )
