"""`outpost pushtest`: new objects pushed down a tree of proxies, against polling (ALICE online).

    outpost pushtest [--rate 50] [--object-size 256KiB] [--seconds 30] [--sites 2] [--nodes 8]
                     [--json]

Brings up an origin, `--sites` site proxies and `--nodes` node proxies under each on loopback,
publishes a new object and its IOV `--rate` times a second, and measures from each write to the
moment the last node's leaf holds the object's bytes: with every proxy following the change
feed (push), then the same with push off and leaves polling the tag's IOVs every second
(Frontier's way). See `loadtest/pushtest.py`. Exit status 1 if an object was lost in the push
scenario.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import orjson
from rich.table import Table

from outpost.commands.runcontrol import make_console
from outpost.config import parse_size

__all__ = ["add_parser"]


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "pushtest", help="new objects pushed down the tree at a rate, against polling"
    )
    parser.add_argument("--rate", type=float, default=50.0, help="objects per second (50)")
    parser.add_argument(
        "--object-size", default="256KiB", help="bytes of each object (256KiB; 10MiB, …)"
    )
    parser.add_argument("--seconds", type=float, default=30.0, help="how long to publish (30)")
    parser.add_argument("--sites", type=int, default=2, help="site proxies (2)")
    parser.add_argument("--nodes", type=int, default=8, help="node proxies per site (8)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(handler=_pushtest)


def _pushtest(args: argparse.Namespace) -> int:
    from loadtest.pushtest import PushConfig, run_pushtest

    config = PushConfig(
        rate=args.rate,
        object_size=parse_size(args.object_size, "--object-size"),
        seconds=args.seconds,
        sites=args.sites,
        nodes=args.nodes,
    )
    if config.rate <= 0 or config.seconds <= 0 or config.sites < 1 or config.nodes < 1:
        print("pushtest: --rate, --seconds, --sites and --nodes must be positive", file=sys.stderr)
        return 2
    result = run_pushtest(config, progress=lambda m: print(f"[pushtest] {m}", file=sys.stderr))
    if args.json:
        print(orjson.dumps(result).decode())
    else:
        _print(result)
    return 0 if result["lost"] == 0 else 1


def _print(result: dict[str, Any]) -> None:
    config = result["config"]
    console = make_console()
    table = Table(
        title=(
            f"{config['rate']:g} objects/s of {config['object_size']} B for {config['seconds']:g} s"
            f" to {config['leaves']} leaves ({config['sites']} sites x "
            f"{config['nodes_per_site']} nodes)"
        )
    )
    for column in (
        "",
        "published",
        "rate",
        "lost",
        "p50 ms",
        "p99 ms",
        "max ms",
        "origin req/object",
    ):
        table.add_column(column, justify="right")
    for name, row in (("push", result), ("polling", result["polling"])):
        latency = row["latency_ms"]
        table.add_row(
            name,
            str(row["published"]),
            f"{row['achieved_rate']:g}/s",
            str(row["lost"]),
            *(
                f"{latency[k]:.1f}" if latency[k] is not None else "-"
                for k in ("p50", "p99", "max")
            ),
            f"{row['origin_requests_per_object']}",
        )
    console.print(table)
    for name, row in (("push", result), ("polling", result["polling"])):
        if row.get("cpu_cores"):
            busy = ", ".join(f"{part} {cores:.2f}" for part, cores in row["cpu_cores"].items())
            console.print(f"{name}: cores kept busy: {busy} (of {config['cpus']})")
    push, polling = result["latency_ms"]["p99"], result["polling"]["latency_ms"]["p99"]
    if push and polling:
        console.print(f"push p99 / polling p99 = {push / polling:.3f}")
