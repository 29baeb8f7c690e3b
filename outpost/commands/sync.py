"""`outpost sync`: copy global tags, their tags, IOVs and payloads from an Outpost origin into a
database, and keep it current.

    outpost sync --from URL --to DB_URL --globaltag GT [--globaltag …] [--tags GLOB]
                 [--dry-run] [--follow [--wait S]] [--json]

`--from` is an origin or a proxy in front of one (the read API only); `--to` a database URL
(SQLite or PostgreSQL, created and migrated if empty). A run copies only what the target
lacks, in one transaction; a conflict (the target holds something the source contradicts)
writes nothing and exits 1. `--dry-run` prints the plan (what would be added, the conflicts)
and writes nothing; it exits 1 if there are conflicts. `--follow` keeps the target current from
the source's change feed until interrupted, resuming where the target stands.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import threading
from typing import Any

import orjson

from outpost.commands.output import CommandFailed
from outpost.urls import is_plain_name, parse_name_glob

__all__ = ["add_parser"]

MIB = 1024 * 1024


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "sync", help="copy global tags, tags, IOVs and payloads from an origin into a database"
    )
    parser.add_argument(
        "--from", dest="source", required=True, help="URL of the source origin (or a proxy)"
    )
    parser.add_argument(
        "--to", dest="target", required=True, help="URL of the target database (SQLAlchemy)"
    )
    parser.add_argument(
        "--globaltag",
        action="append",
        required=True,
        help="global tag to copy, with every tag it names (repeat for more)",
    )
    parser.add_argument("--tags", help="copy only the tags whose names match this glob")
    parser.add_argument(
        "--dry-run", action="store_true", help="print what would be copied and the conflicts"
    )
    parser.add_argument(
        "--follow", action="store_true", help="keep the target current from the change feed"
    )
    parser.add_argument(
        "--wait", type=int, default=25, help="longest wait of one feed poll, seconds (1..60)"
    )
    parser.add_argument(
        "--timeout", type=float, default=30.0, help="seconds to wait for one answer"
    )
    parser.add_argument(
        "--max-payload-mib",
        type=int,
        default=1024,
        help="largest payload accepted from the source (MiB)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(handler=_sync)


def _check(args: argparse.Namespace) -> None:
    bad = [gt for gt in args.globaltag if not is_plain_name(gt)]
    if bad:
        raise CommandFailed(f"--globaltag {bad[0][:100]!r} is not a plain name", code=2)
    if args.tags is not None:
        try:
            args.tags = parse_name_glob(args.tags, "--tags")
        except Exception as exc:
            raise CommandFailed(str(exc), code=2) from None
    if args.follow and args.dry_run:
        raise CommandFailed("--follow and --dry-run do not go together", code=2)
    if not 1 <= args.wait <= 60 or args.timeout <= 0 or args.max_payload_mib < 1:
        raise CommandFailed("--wait is 1..60, --timeout and --max-payload-mib positive", code=2)


def _sync(args: argparse.Namespace) -> int:
    from outpost.commands.db import database_errors
    from outpost.sync.run import Selection, follow, sync_once
    from outpost.sync.source import Source
    from outpost.sync.target import Target

    _check(args)
    logging.getLogger("outpost.origin.audit").setLevel(logging.WARNING)  # in the database
    selection = Selection(tuple(dict.fromkeys(args.globaltag)), args.tags)
    source = Source(args.source, timeout=args.timeout, max_payload_bytes=args.max_payload_mib * MIB)
    try:
        with database_errors(args.target):
            target = Target(args.target)
            try:
                if args.follow:
                    stop = threading.Event()
                    signal.signal(signal.SIGTERM, lambda *_: stop.set())
                    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C: a clean stop
                        follow(
                            source,
                            target,
                            selection,
                            wait=args.wait,
                            stop=stop,
                            report=lambda o: _report(args, o, source.url, shown_target(args)),
                        )
                    return 0
                outcome = sync_once(source, target, selection, dry_run=args.dry_run)
            finally:
                target.close()
    finally:
        source.close()
    _report(args, outcome, source.url, shown_target(args))
    return 1 if outcome.plan.conflicts else 0


def shown_target(args: argparse.Namespace) -> str:
    from outpost.commands.db import shown

    return shown(args.target)


def _report(args: argparse.Namespace, outcome: Any, source: str, target: str) -> None:
    plan = outcome.plan
    document = {
        "source": source,
        "target": target,
        "dry_run": bool(getattr(args, "dry_run", False)),
        "written": outcome.written,
        "position": outcome.position,
        "globaltags": [
            {"name": g.source.name, "created": g.create, "entries": len(g.entries)}
            for g in plan.globaltags
        ],
        "tags": [
            {
                "name": t.source.name,
                "created": t.create,
                "batches": len(t.batches),
                "iovs": t.iovs,
                "locked": t.lock,
            }
            for t in plan.tags
        ],
        "payloads": len(plan.payloads),
        "payload_bytes": outcome.payload_bytes,
        "skipped_globaltags": list(plan.skipped),
        "conflicts": list(plan.conflicts),
        "seconds": round(outcome.seconds, 3),
        "requests": outcome.requests,
    }
    if args.json:
        print(orjson.dumps(document).decode(), flush=True)
        return
    verb = "would copy" if document["dry_run"] else "copied"
    if plan.empty and not plan.conflicts:
        print(f"{target} is up to date with {source} (feed position {outcome.position})")
    else:
        iovs = sum(t.iovs for t in plan.tags)
        print(
            f"{verb} from {source} to {target}: {len(plan.globaltags)} global tags, "
            f"{len(plan.tags)} tags ({sum(t.create for t in plan.tags)} new), {iovs} IOVs, "
            f"{len(plan.payloads)} payloads ({outcome.payload_bytes:,} bytes) "
            f"in {outcome.seconds:.2f} s"
        )
        for g in plan.globaltags:
            print(
                f"  global tag {g.source.name}: {'new, ' if g.create else ''}"
                f"{len(g.entries)} map entries, {g.source.state}"
            )
        for t in plan.tags:
            extra = ", lock" if t.lock else ""
            print(
                f"  tag {t.source.name}: {'new, ' if t.create else ''}{t.iovs} IOVs in "
                f"{len(t.batches)} batches{extra}"
            )
    for name in plan.skipped:
        print(f"  global tag {name} left out: it names tags --tags does not select")
    for conflict in plan.conflicts:
        print(f"  conflict: {conflict}")
    if plan.conflicts:
        print("nothing was written: resolve the conflicts first")
