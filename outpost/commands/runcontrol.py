"""Run control and operator commands: flush, purge, warm, status, get.

    outpost flush  --run R --proxy URL     flush the tree below URL; exit 0 only if all acked
    outpost purge  URL… --proxy URL        remove URLs from every cache below URL (squid's PURGE)
    outpost warm   --globaltag GT --run R --proxy URL   prefetch a run into the tree
    outpost status --proxy URL             the tree below URL: name, epoch, hit ratio, cache
    outpost get    URL                     what a node would receive (status, Cache-Status, body)
    outpost resolve GT --run R [--proxy URL] [--server URL] [--as-run-record]
                                           a run's records, as a node sees them (or as the run
                                           was taken, from its run record)
    outpost tree-keys                      a new tree signing key and its public key

`outpost prepare` (flush, warm, attest, record the run) is in `outpost.commands.prepare`.

Every command takes `--json` for scripts; the token comes from `--token` or
`$OUTPOST_RUN_CONTROL_TOKEN`, and goes only to the `--proxy` given: the proxies pass commands
down the tree signed with the tree key, never with this token. URLs are shown redacted.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import hashlib
import os
import re
import sys
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson
from rich.console import Console
from rich.progress import Progress
from rich.table import Table
from rich.tree import Tree

from outpost.commands.output import DASH, CommandFailed, dash, iov_key
from outpost.redact import redact_text, redact_url
from outpost.urls import Resolve

__all__ = ["add_parser", "flush", "make_console", "purge", "purge_path", "tree_status", "warm"]

WARM_BATCH = 8
PURGE_BATCH = 1000  # the most URLs a proxy takes in one purge (`proxy.admin.MAX_PURGE_URLS`)
_TARGET = re.compile(r"/[!-~]*")  # a path (and query) of printable ASCII, as `proxy.core.keys`
STATUS_PATH = "/_outpost/status"
STATUS_FIELDS: dict[str, type] = {"name": str, "upstreams": dict, "cache": dict}


class _Console(Console):
    def on_broken_pipe(self) -> None:
        """The reader went away (`| head`): `outpost.cli` ends quietly, with status 141 like
        any command a SIGPIPE stops (rich's own answer is status 1, which means failure)."""
        self.quiet = True
        raise BrokenPipeError


def make_console() -> Console:
    """A terminal's own width; 160 columns when writing to a file or pipe, so tables stay whole."""
    return _Console(width=None if sys.stdout.isatty() else 160)


def _common(parser: argparse.ArgumentParser, *, token: bool = True) -> None:
    parser.add_argument("--proxy", required=True, help="URL of the top proxy of the tree")
    if token:
        parser.add_argument("--token", help="run-control token ($OUTPOST_RUN_CONTROL_TOKEN)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def add_parser(commands: Any) -> None:
    flush_parser = commands.add_parser("flush", help="flush the cache tree below a proxy")
    flush_parser.add_argument("--run", type=int, required=True, help="the coming run number")
    _common(flush_parser)
    flush_parser.set_defaults(handler=_flush)

    purge_parser = commands.add_parser(
        "purge", help="remove URLs from every cache of the tree below a proxy"
    )
    purge_parser.add_argument(
        "urls", nargs="+", metavar="URL", help="a path such as /v1/tags/T/iovs, or a full URL"
    )
    _common(purge_parser)
    purge_parser.set_defaults(handler=_purge)

    warm_parser = commands.add_parser("warm", help="prefetch a run into the cache tree")
    warm_parser.add_argument("--globaltag", required=True, help="global tag of the run")
    warm_parser.add_argument("--run", type=int, required=True, help="the coming run number")
    _common(warm_parser)
    warm_parser.set_defaults(handler=_warm)

    status_parser = commands.add_parser("status", help="show the cache tree below a proxy")
    _common(status_parser, token=False)
    status_parser.set_defaults(handler=_status)

    get_parser = commands.add_parser("get", help="GET a URL as a farm node would")
    get_parser.add_argument("url", help="full URL, e.g. http://node:8081/v1/resolve/GT?run=1")
    get_parser.add_argument("--json", action="store_true", help="print one JSON object")
    get_parser.set_defaults(handler=_get)

    resolve_parser = commands.add_parser("resolve", help="resolve a global tag for a run")
    resolve_parser.add_argument("globaltag", help="global tag")
    resolve_parser.add_argument("--run", type=int, required=True, help="run number")
    resolve_parser.add_argument("--lumi", type=int, help="luminosity section (default 1)")
    resolve_parser.add_argument(
        "--proxy", action="append", default=[], help="proxy URL, in failover order (repeat)"
    )
    resolve_parser.add_argument(
        "--server", action="append", default=[], help="server URL, in failover order (repeat)"
    )
    resolve_parser.add_argument(
        "--as-run-record",
        action="store_true",
        help="the conditions the run was taken with: its run record's snapshot, checked",
    )
    resolve_parser.add_argument("--json", action="store_true", help="print one JSON object")
    resolve_parser.set_defaults(handler=_resolve)

    keys_parser = commands.add_parser(
        "tree-keys", help="make a tree signing key (parents) and its public key (children)"
    )
    keys_parser.add_argument("--json", action="store_true", help="print one JSON object")
    keys_parser.set_defaults(handler=_tree_keys)


def command_token(args: argparse.Namespace) -> str | None:
    return getattr(args, "token", None) or os.environ.get("OUTPOST_RUN_CONTROL_TOKEN")


def post_command(
    proxy: str, path: str, body: dict[str, Any], token: str | None, timeout: float
) -> dict[str, Any]:
    """POST to a proxy's admin API; its JSON answer, or `{"error": …}` saying what went wrong."""
    headers = {"authorization": f"Bearer {token}"} if token else {}
    try:
        response = httpx.post(proxy.rstrip("/") + path, json=body, headers=headers, timeout=timeout)
    except httpx.HTTPError as exc:
        return {"error": redact_text(f"{redact_url(proxy)}: {type(exc).__name__}: {exc}")}
    try:
        answer: dict[str, Any] = response.json()
    except ValueError:
        return {"error": f"{redact_url(proxy)} answered {response.status_code} without JSON"}
    if response.status_code != 200:
        return {"error": f"{response.status_code}: {answer.get('detail') or answer.get('error')}"}
    return answer


def flush(proxy: str, run: int, token: str | None, timeout: float = 60.0) -> dict[str, Any]:
    """Flush the tree below `proxy` before `run`."""
    return post_command(proxy, "/_outpost/flush", {"run": run}, token, timeout)


def _flush(args: argparse.Namespace) -> int:
    answer = flush(args.proxy, args.run, command_token(args), args.timeout)
    return _report(
        args,
        answer,
        "flush",
        lambda: f"flush before run {answer['run']} (epoch {answer['epoch']})",
        ("acknowledged", "[red]no[/red]"),
        lambda name: "[green]yes[/green]",
    )


def _report(
    args: argparse.Namespace,
    answer: dict[str, Any],
    verb: str,
    title: Callable[[], str],
    column: tuple[str, str],
    cell: Callable[[str], str],
) -> int:
    """A command fanned out through the tree (flush, purge): its answer as JSON or as a table
    of every cache (`cell` of those that acknowledged, `column[1]` of those that did not);
    exit status 1 unless every cache acknowledged."""
    failed = "error" in answer or bool(answer["failed"])
    if args.json:
        print(orjson.dumps(answer).decode())
        return 1 if failed else 0
    console = make_console()
    if "error" in answer:
        console.print(f"[red]{verb} failed:[/red] {answer['error']}")
        return 1
    table = Table(title=title())
    table.add_column("cache")
    table.add_column(column[0], justify="right")
    table.add_column("error")
    for name in answer["caches"]:
        table.add_row(name, cell(name), "")
    for failure in answer["failed"]:
        table.add_row(failure["name"], column[1], f"{failure['url']}: {failure['error']}")
    console.print(table)
    console.print(f"{answer['acked']} acknowledged, {len(answer['failed'])} did not")
    return 1 if failed else 0


def purge_path(url: str) -> str:
    """What a proxy purges for `url`: a path (and query) as given, a full URL's path and query.
    Raises `CommandFailed` (usage) for anything else."""
    if url.startswith(("http://", "https://")):
        parts = urlsplit(url)
        url = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    if _TARGET.fullmatch(url) is None:
        raise CommandFailed(
            f"purge: {redact_url(url)!r} is not a path such as /v1/tags/T/iovs or an http(s) "
            "URL (printable ASCII, other bytes percent-encoded)",
            code=2,
        )
    return url


def purge(proxy: str, urls: list[str], token: str | None, timeout: float = 60.0) -> dict[str, Any]:
    """Remove `urls` (paths) from every cache of the tree below `proxy`, memory and Redis,
    `PURGE_BATCH` at a time; entries removed per cache, and the caches that did not ack."""
    paths = list(dict.fromkeys(urls))
    total: dict[str, Any] = {"urls": len(paths), "acked": 0, "caches": [], "removed": {}}
    failed: dict[str, dict[str, str]] = {}  # a cache that missed one batch missed the purge
    for start in range(0, len(paths), PURGE_BATCH):
        batch = paths[start : start + PURGE_BATCH]
        result = post_command(proxy, "/_outpost/purge", {"urls": batch}, token, timeout)
        if "error" in result:
            return {**total, "failed": list(failed.values()), "error": result["error"]}
        for name, count in result["removed"].items():
            total["removed"][name] = total["removed"].get(name, 0) + count
        total["caches"] = sorted({*total["caches"], *result["caches"]})
        total["acked"] = max(total["acked"], result["acked"])
        for failure in result["failed"]:
            failed.setdefault(failure["name"], failure)
    return {**total, "failed": sorted(failed.values(), key=lambda f: f["name"])}


def _purge(args: argparse.Namespace) -> int:
    paths = [purge_path(url) for url in args.urls]
    answer = purge(args.proxy, paths, command_token(args), args.timeout)
    return _report(
        args,
        answer,
        "purge",
        lambda: f"purge of {answer['urls']} URLs",
        ("entries removed", "[red]not purged[/red]"),
        lambda name: str(answer["removed"].get(name, 0)),
    )


def warm(
    proxy: str,
    globaltag: str,
    run: int,
    token: str | None,
    timeout: float = 60.0,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Prefetch a run's resolve answer and payloads into the tree, a batch of URLs at a time."""
    resolve = Resolve(globaltag, run).url()
    try:
        answer = httpx.get(proxy.rstrip("/") + resolve, timeout=timeout)
    except httpx.HTTPError as exc:
        return {"error": redact_text(f"{redact_url(proxy)}: {type(exc).__name__}: {exc}")}
    if answer.status_code != 200:
        return {"error": f"{resolve}: {answer.status_code} {answer.text[:300]}"}
    payloads = sorted({r["payload"] for r in answer.json()["records"] if r["payload"]})
    urls = [resolve, *(f"/v1/payloads/{digest}" for digest in payloads)]
    total: dict[str, Any] = {
        "urls": len(urls),
        "warmed": 0,
        "failed_urls": [],
        "failed": [],
        "acked": 0,
    }
    task = progress.add_task("warming", total=len(urls)) if progress else None
    for start in range(0, len(urls), WARM_BATCH):
        batch = urls[start : start + WARM_BATCH]
        result = post_command(proxy, "/_outpost/warm", {"urls": batch}, token, timeout)
        if "error" in result:
            return {**total, "error": result["error"]}
        total["warmed"] += result["warmed"]
        total["failed_urls"] += result["failed_urls"]
        total["acked"] = max(total["acked"], result["acked"])
        total["failed"] = result["failed"]  # the tree as of the last batch
        if progress is not None and task is not None:
            progress.advance(task, len(batch))
    return total


def _warm(args: argparse.Namespace) -> int:
    if args.json:
        answer = warm(args.proxy, args.globaltag, args.run, command_token(args), args.timeout)
        print(orjson.dumps(answer).decode())
    else:
        with Progress(transient=True) as progress:
            answer = warm(
                args.proxy, args.globaltag, args.run, command_token(args), args.timeout, progress
            )
        console = make_console()
        if "error" in answer:
            console.print(f"[red]warm failed:[/red] {answer['error']}")
            return 1
        console.print(
            f"warmed {answer['warmed']}/{answer['urls']} URLs in {answer['acked']} caches; "
            f"{len(answer['failed'])} caches did not acknowledge"
        )
        for failure in answer["failed"]:
            console.print(f"  [red]{failure['name']}[/red] {failure['url']}: {failure['error']}")
    ok = "error" not in answer and not answer["failed"] and not answer["failed_urls"]
    return 0 if ok else 1


async def _status_of(client: httpx.AsyncClient, url: str, depth: int) -> dict[str, Any]:
    shown = redact_url(url)
    try:
        answer = await client.get(url.rstrip("/") + STATUS_PATH, params={"probe": "1"})
    except httpx.HTTPError as exc:
        return {"url": shown, "error": redact_text(f"{type(exc).__name__}: {exc}")}
    status = _status_document(answer)
    if isinstance(status, str):
        return {"url": shown, "error": status}
    if depth > 0:
        status["subtree"] = await asyncio.gather(
            *(_status_of(client, child["url"], depth - 1) for child in _children(status))
        )
    return status


def _status_document(answer: httpx.Response) -> dict[str, Any] | str:
    """A proxy's status answer, or what is wrong with it (the URL is not an Outpost proxy)."""
    if answer.status_code != 200:
        return f"not an Outpost proxy: {STATUS_PATH} answered {answer.status_code}"
    try:
        status = answer.json()
    except ValueError:
        return f"not an Outpost proxy: {STATUS_PATH} did not answer JSON"
    if not isinstance(status, dict):
        return f"not an Outpost proxy: {STATUS_PATH} did not answer a JSON object"
    missing = [key for key, kind in STATUS_FIELDS.items() if not isinstance(status.get(key), kind)]
    if missing:
        return f"not an Outpost proxy: {STATUS_PATH} has no {', '.join(missing)}"
    return status


def _children(status: dict[str, Any]) -> list[dict[str, Any]]:
    children = status.get("children")
    if not isinstance(children, list):
        return []
    return [c for c in children if isinstance(c, dict) and isinstance(c.get("url"), str)]


def problems(status: dict[str, Any]) -> list[str]:
    """What is wrong with one cache, by its status answer: unreachable, an upstream that does
    not answer now (probed) or is being avoided after failures, its Redis down."""
    if "error" in status:
        return [f"unreachable: {status['error']}"]
    found = []
    for url, health in status["upstreams"].items():
        probe = health.get("probe") or {}
        if probe.get("reachable") is False:
            found.append(f"upstream {url} unreachable: {probe.get('error')}")
        elif isinstance(probe.get("status"), int) and probe["status"] >= 500:
            found.append(f"upstream {url} answers {probe['status']}")
        elif health.get("up") is False:
            found.append(
                f"upstream {url} avoided after {health.get('consecutive_failures')} failures"
            )
    redis = status.get("redis")
    if isinstance(redis, dict) and redis.get("up") is False:
        found.append(f"redis {redis.get('url')} down")
    return found


def _walk(status: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield status
    for child in status.get("subtree", []):
        yield from _walk(child)


def tree_summary(status: dict[str, Any]) -> dict[str, int]:
    """How many caches of the tree are ok, degraded or unreachable."""
    counts = {"caches": 0, "ok": 0, "degraded": 0, "unreachable": 0}
    for cache in _walk(status):
        counts["caches"] += 1
        state = "unreachable" if "error" in cache else "degraded" if problems(cache) else "ok"
        counts[state] += 1
    return counts


def tree_status(proxy: str, timeout: float = 10.0, depth: int = 4) -> dict[str, Any]:
    """The status of `proxy` and, recursively, of every child registered below it; each
    proxy probes its upstreams as it answers."""

    async def collect() -> dict[str, Any]:
        async with httpx.AsyncClient(timeout=timeout) as client:
            return await _status_of(client, proxy, depth)

    return asyncio.run(collect())


def _describe(status: dict[str, Any]) -> str:
    if "error" in status:
        return f"[red]{status['url']} unreachable[/red]: {status['error']}"
    cache = status["cache"]
    found = problems(status)
    health = "[green]ok[/green]" if not found else f"[yellow]{'; '.join(found)}[/yellow]"
    epoch, ratio = status.get("epoch"), status.get("hit_ratio")
    return (
        f"[bold]{status['name']}[/bold] {dash(status.get('url'))}  epoch {dash(epoch)}  "
        f"hit ratio {f'{ratio:.0%}' if isinstance(ratio, int | float) else DASH}  "
        f"cache {cache.get('entries', DASH)} entries, "
        f"{cache.get('bytes', 0) / 2**20:.1f} MiB  {health}"
    )


def _status(args: argparse.Namespace) -> int:
    status = tree_status(args.proxy, args.timeout)
    summary = tree_summary(status)
    healthy = summary["ok"] == summary["caches"]
    if args.json:
        print(orjson.dumps({**status, "summary": summary}).decode())
        return 0 if healthy else 1

    def add(node: Tree, entry: dict[str, Any]) -> None:
        for child in entry.get("subtree", []):
            add(node.add(_describe(child)), child)

    root = Tree(_describe(status))
    add(root, status)
    console = make_console()
    console.print(root)
    console.print(
        f"{summary['caches']} caches: {summary['ok']} ok, {summary['degraded']} degraded, "
        f"{summary['unreachable']} unreachable"
    )
    return 0 if healthy else 1


def _tree_keys(args: argparse.Namespace) -> int:
    from proxy.core.signing import generate_keypair

    signing, public = generate_keypair()
    if args.json:
        print(orjson.dumps({"tree_signing_key": signing, "tree_public_key": public}).decode())
    else:
        print(f"OUTPOST_PROXY_TREE_SIGNING_KEY={signing}   # proxies with children; keep secret")
        print(f"OUTPOST_PROXY_TREE_PUBLIC_KEY={public}   # every proxy with a parent")
    return 0


def _get(args: argparse.Namespace) -> int:
    try:
        response = httpx.get(args.url, timeout=60)
    except httpx.HTTPError as exc:
        reason = redact_text(f"{type(exc).__name__}: {exc}")
        raise CommandFailed(f"get {redact_url(args.url)}: {reason}") from None
    summary: dict[str, Any] = {
        "status": response.status_code,
        "cache_status": response.headers.get("cache-status"),
        "age": response.headers.get("age"),
        "etag": response.headers.get("etag"),
        "size": len(response.content),
        "sha256": hashlib.sha256(response.content).hexdigest(),
    }
    if response.headers.get("content-type", "").startswith("application/json"):
        summary["body"] = response.json()
    if args.json:
        print(orjson.dumps(summary).decode())
    else:
        console = make_console()
        for key in ("status", "cache_status", "age", "etag", "size", "sha256"):
            console.print(f"[bold]{key}[/bold]: {dash(summary[key])}", highlight=False)
        if "body" in summary:
            console.print_json(orjson.dumps(summary["body"]).decode())
    return 0 if response.status_code < 400 else 1


def _resolve(args: argparse.Namespace) -> int:
    """Resolve through the farm-node client (`--proxy`/`--server`, else the environment)."""
    from outpost.client import Client, ClientError, RunRecord
    from outpost.client.answers import check_conditions

    record: RunRecord | None = None
    try:
        if args.proxy or args.server:
            client = Client(servers=args.server, proxies=args.proxy)
        else:
            client = Client.from_env()
        with client:
            if args.as_run_record:
                record = client.run_record(args.run)
                if record.globaltag != args.globaltag:
                    raise CommandFailed(
                        f"resolve: run {args.run} was taken with {record.globaltag}, "
                        f"not {args.globaltag}"
                    )
                resolution = client.resolve(
                    record.globaltag, args.run, record.lumi, snapshot=record.snapshot_micros
                )
                check_conditions(resolution, record)
            else:
                resolution = client.resolve(args.globaltag, args.run, args.lumi)
    except ClientError as exc:
        raise CommandFailed(f"resolve: {exc}") from None
    records = [dataclasses.asdict(record) for record in resolution.records]
    recorded = None
    if record is not None:
        recorded = {
            "digest": record.digest,
            "snapshot": record.snapshot,
            "by": record.by,
            "created_at": record.created_at,
            "attestation": record.attestation,
        }
    if args.json:
        document = {**dataclasses.asdict(resolution), "records": records}
        if recorded is not None:
            document["run_record"] = recorded
        print(orjson.dumps(document).decode())
        return 0
    title = f"{resolution.globaltag}, run {resolution.run}, lumi {resolution.lumi}"
    if record is not None:
        title += (
            f": as the run was taken, conditions {record.digest[:16]}, snapshot "
            f"{record.snapshot}, recorded by {dash(record.by)} at {record.created_at}"
        )
    table = Table(title=title)
    for column in ("record", "tag", "since", "until", "payload", "size"):
        table.add_column(column)
    for r in records:
        table.add_row(
            r["record"],
            r["tag"],
            iov_key(r["since"], r["time_type"]),
            iov_key(r["until"], r["time_type"]),
            (r["payload"] or DASH)[:16],
            dash(r["size"]),
        )
    make_console().print(table)
    return 0
