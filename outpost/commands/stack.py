"""`outpost up` and `outpost demo`: the whole hierarchy on this machine.

    outpost up   [--nodes 4] [--ports O,S,N1,…] [--env-file F] [--db URL] [--redis URL] [--json]
    outpost demo [--farm-nodes 300] [--nodes 4] [--runs 2]       up + a simulated run start

`up` runs until Ctrl-C or SIGTERM, then stops every tier. Besides the tiers it prints the shell
lines that reach them (`export ORIGIN=… SITE=… NODE=…` and run control's token, which `flush`
and `warm` read); `--env-file F` writes them to F, readable by its owner alone (the token) and
removed when `up` stops, so that another shell can `. F`. `--ports` fixes the ports (the origin's,
the site's, then each node's); one in use fails before any tier starts.

`demo` brings the stack up, flushes it before each run as run control would and lets a few
hundred simulated farm nodes fetch the run through their node proxies. The simulated nodes share
this one Python process, so their times measure that process's CPU, and are labelled so; what
the caches did comes from their own metrics: answers, hit ratio, time to answer and CPU per
cache, and the requests that reached the origin. `outpost loadtest` measures run starts.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import shlex
import signal
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import httpx
import orjson
from rich.table import Table

from outpost.commands.output import DASH, CommandFailed
from outpost.commands.runcontrol import make_console
from outpost.localstack import LocalStack, StartFailed

__all__ = ["add_parser"]

EXIT_USAGE = 2
CACHED = ("hit", "collapsed", "miss", "stale", "revalidated")  # proxy.metrics's results, cached
EXPORT_LINES = (  # the shell lines of `up`, a group of variables each
    ("ORIGIN", "SITE", "NODE", "NODES"),
    ("OUTPOST_PROXIES", "OUTPOST_SERVERS"),
    ("OUTPOST_RUN_CONTROL_TOKEN",),
)


def _ports(text: str) -> list[int]:
    """`--ports 8080,8081,8082`; argparse's type, so a malformed list is a usage error."""
    try:
        ports = [int(port) for port in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected port numbers separated by commas, e.g. 8080,8081,8082"
        ) from None
    if any(not 0 < port < 65536 for port in ports) or len(set(ports)) != len(ports):
        raise argparse.ArgumentTypeError(f"{text!r}: each port 1-65535, and each once")
    return ports


def _stack_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--nodes", type=int, default=4, help="node proxies (default 4)")
    parser.add_argument(
        "--ports",
        type=_ports,
        metavar="ORIGIN,SITE,NODE1,…",
        help="fixed ports, one per tier in this order (default: free ones)",
    )
    parser.add_argument("--db", help="database URL (default sqlite:///./outpost.sqlite)")
    parser.add_argument("--redis", help="Redis URL: adds the site's shared cache tier")
    parser.add_argument("--server", choices=("uvicorn", "granian"), default="uvicorn")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def add_parser(commands: Any) -> None:
    up = commands.add_parser("up", help="run origin, site proxy and node proxies on loopback")
    _stack_options(up)
    up.add_argument(
        "--env-file",
        type=Path,
        metavar="PATH",
        help="write the export lines there (mode 0600), for `. PATH` in another shell",
    )
    up.set_defaults(handler=_up)
    demo = commands.add_parser("demo", help="up, then simulate a run start of many farm nodes")
    _stack_options(demo)
    demo.add_argument("--farm-nodes", type=int, default=300, help="simulated farm nodes")
    demo.add_argument("--runs", type=int, default=2, help="run starts to simulate")
    demo.add_argument("--globaltag", default="OUTPOST_HLT_2026_V1", help="global tag to fetch")
    demo.add_argument(
        "--keep",
        action="store_true",
        help="keep the stack running after the report, to browse it (Ctrl-C stops it)",
    )
    demo.set_defaults(handler=_demo)


@contextlib.contextmanager
def _running(args: argparse.Namespace) -> Iterator[LocalStack]:
    """The stack, started, and stopped on the way out; a tier that cannot start (a port in
    use, a database that cannot be opened) is one line."""
    stack = LocalStack(
        nodes=args.nodes, db=args.db, redis=args.redis, server=args.server, ports=args.ports
    )
    names = stack.tier_names()
    if args.ports is not None and len(args.ports) != len(names):
        raise CommandFailed(
            f"--ports needs {len(names)} ports, in this order: {', '.join(names)}; "
            f"{len(args.ports)} given",
            EXIT_USAGE,
        )
    try:
        stack.start()
    except StartFailed as exc:
        raise CommandFailed(exc.summary) from None
    try:
        yield stack
    finally:
        stack.stop()


def _stop_on_signals() -> threading.Event:
    """An event set by SIGTERM, SIGINT or SIGHUP (the terminal closed) from now on. Installed
    before the stack is described: whoever reads the description may signal at once, and must
    not find the default handler (which would end the process without stopping the tiers)."""
    stop = threading.Event()

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, handler)
    return stop


def _up(args: argparse.Namespace) -> int:
    if args.env_file is not None and not args.env_file.absolute().parent.is_dir():
        raise CommandFailed(f"--env-file {args.env_file}: its directory does not exist")
    stop = _stop_on_signals()
    with _running(args) as stack:
        environment = stack.environment()
        lines = [
            "export " + " ".join(f"{name}={shlex.quote(environment[name])}" for name in group)
            for group in EXPORT_LINES
        ]
        env_file: Path | None = args.env_file
        text = ""
        if env_file is not None:
            text = "".join(f"{line}\n" for line in [_env_file_comment(env_file), *lines])
            _write_private(env_file, text)
        try:
            if args.json:
                described = {**stack.describe(), "web": web_urls(stack)}
                if env_file is not None:
                    described["env_file"] = str(env_file)
                print(orjson.dumps(described).decode(), flush=True)
            else:
                _print_up(stack, lines, env_file)
            stop.wait()
        finally:
            if env_file is not None:
                _remove_if_unchanged(env_file, text)
    return 0


def web_urls(stack: LocalStack) -> dict[str, str]:
    """The web interface of a stack: the conditions browser (through the site, as every read)
    and the cache-tree dashboard of the site."""
    top = stack.site.url if stack.proxies else stack.origin.url
    urls = {"conditions": f"{top}/ui/"}
    if stack.proxies:
        urls["dashboard"] = f"{stack.site.url}/_outpost/ui/"
    return urls


def _web(url: str, role: str) -> str:
    return f"{url}/ui/" if role == "origin" else f"{url}/_outpost/ui/"


def _env_file_comment(path: Path) -> str:
    return (
        f"# outpost up (pid {os.getpid()}): `. {shlex.quote(str(path))}` sets these in a shell; "
        "removed when the stack stops. Holds run control's token: keep it to yourself."
    )


def _write_private(path: Path, text: str) -> None:
    """`text` in `path`, readable by its owner alone and written whole (a new file renamed
    into place), so a shell that sources it never reads half of it."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as out:
            out.write(text)
        os.replace(temporary, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise CommandFailed(f"--env-file {path}: {exc.strerror or exc}") from None


def _remove_if_unchanged(path: Path, text: str) -> None:
    """Remove the file `up` wrote, unless another `up` has written it since."""
    with contextlib.suppress(OSError):
        if path.read_text() == text:
            path.unlink()


def _print_up(stack: LocalStack, lines: list[str], env_file: Path | None) -> None:
    console = make_console()
    table = Table(title="outpost up")
    table.add_column("tier")
    table.add_column("role")
    table.add_column("url")
    table.add_column("web")
    for tier in stack.tiers:
        table.add_row(tier.name, tier.role, tier.url, _web(tier.url, tier.role))
    console.print(table)
    if env_file is not None:
        source = f". {shlex.quote(str(env_file))}"
        console.print(f"To reach it from a shell: {source}   (or paste these lines)", markup=False)
    else:
        console.print("To reach it from a shell, paste these lines (or use --env-file PATH):")
    print("\n".join(lines))  # as plain text: rich would wrap or colour what is to be pasted
    console.print("NODE is node-1; OUTPOST_PROXIES and _SERVERS: what a farm node behind it sets.")
    console.print(f"logs: {stack.state}", markup=False)
    console.print("Ctrl-C (or SIGTERM) stops every tier.")
    sys.stdout.flush()


# --- demo --------------------------------------------------------------------------------------


@dataclass
class _CacheCounters:
    """What a cache's metrics said at one moment: answers to cacheable requests, their summed
    time, the histogram of their times (upper bound in seconds → answers that took at most
    that), its CPU. Passed-through requests (the change feed's long polls) are left out."""

    answers: float = 0.0
    seconds: float = 0.0
    cpu: float = 0.0
    buckets: dict[float, float] = field(default_factory=dict)


def _cache_counters(url: str) -> _CacheCounters:
    from prometheus_client.parser import text_string_to_metric_families

    counters = _CacheCounters()
    text = httpx.get(f"{url}/_outpost/metrics", timeout=10).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.labels.get("result", CACHED[0]) not in CACHED:
                continue
            if sample.name == "outpost_proxy_request_seconds_bucket":
                bound = float(sample.labels["le"])
                counters.buckets[bound] = counters.buckets.get(bound, 0.0) + sample.value
            elif sample.name == "outpost_proxy_request_seconds_count":
                counters.answers += sample.value
            elif sample.name == "outpost_proxy_request_seconds_sum":
                counters.seconds += sample.value
            elif sample.name == "process_cpu_seconds_total":
                counters.cpu = sample.value
    return counters


def _cache_figures(before: _CacheCounters, after: _CacheCounters) -> dict[str, Any]:
    """What a cache did between two readings. The p99 is the histogram's bound it falls under
    (None beyond the last one)."""
    answers = after.answers - before.answers
    p99 = math.inf
    for bound in sorted(after.buckets):
        if after.buckets[bound] - before.buckets.get(bound, 0.0) >= 0.99 * answers:
            p99 = bound
            break
    return {
        "answers": int(answers),
        "mean_ms": (after.seconds - before.seconds) / answers * 1000 if answers else None,
        "p99_ms_at_most": None if math.isinf(p99) or not answers else p99 * 1000,
        "cpu_s": after.cpu - before.cpu,
    }


def _demo(args: argparse.Namespace) -> int:
    from outpost.demo import run_demo

    with _running(args) as stack:
        caches = [tier for tier in stack.tiers if tier.role != "origin"]
        before = {tier.name: _cache_counters(tier.url) for tier in caches}
        wall, cpu = time.perf_counter(), time.process_time()
        report = run_demo(stack, args.globaltag, farm_nodes=args.farm_nodes, runs=args.runs)
        report["simulation"] = {
            "wall_s": time.perf_counter() - wall,
            "cpu_s": time.process_time() - cpu,
        }
        report["caches"] = {
            tier.name: {
                **_cache_figures(before[tier.name], _cache_counters(tier.url)),
                "hit_ratio": report["hit_ratio"][tier.name],
            }
            for tier in caches
        }
        report["web"] = web_urls(stack)
        if args.json:
            print(orjson.dumps(report).decode(), flush=True)
        else:
            _print_report(report)
            web = report["web"]
            console = make_console()
            console.print(
                f"Browse the conditions at {web['conditions']}; the cache tree at "
                f"{web.get('dashboard', DASH)}"
                + (" (Ctrl-C stops the stack)." if args.keep else " (with --keep, while it runs).")
            )
            sys.stdout.flush()
        if args.keep:
            _stop_on_signals().wait()
    return 0 if report["failures"] == 0 else 1


def _ms(value: float | None) -> str:
    return DASH if value is None else f"{value:.2f} ms" if value < 10 else f"{value:.0f} ms"


def _print_report(report: dict[str, Any]) -> None:
    console = make_console()
    runs = Table(
        title=f"{report['farm_nodes']} simulated farm nodes, {report['node_proxies']} node proxies"
    )
    for column in ("run", "flush acked", "all nodes done", "p50 node", "p99 node", "failures"):
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
    simulation = report["simulation"]
    console.print(
        f"The simulated nodes share this one Python process: {simulation['cpu_s']:.1f} s of its "
        f"CPU in {simulation['wall_s']:.1f} s. The times above are that process's, not the "
        "caches' (`outpost loadtest` measures run starts); the caches' own are below."
    )
    caches = Table(title="what the caches did (from their metrics)")
    for column in ("cache", "answers", "hit ratio", "time to answer: mean", "p99 at most", "CPU"):
        caches.add_column(column)
    for name, cache in report["caches"].items():
        caches.add_row(
            name,
            str(cache["answers"]),
            f"{cache['hit_ratio']:.1%}",
            _ms(cache["mean_ms"]),
            _ms(cache["p99_ms_at_most"]),
            f"{cache['cpu_s']:.2f} s",
        )
    console.print(caches)
    origin = report["origin"]
    per_run = "/".join(sorted({str(run["unique_urls"]) for run in report["runs"]}))
    console.print(
        f"origin: {origin['requests']} requests ({origin['not_modified']} answered 304) for "
        f"{len(report['runs'])} runs of {per_run} distinct URLs each; "
        f"{report['verified_payloads']} payloads verified, {report['failures']} failures"
    )
