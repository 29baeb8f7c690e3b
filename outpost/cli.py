"""The `outpost` command: database set-up and the servers.

    outpost db init   --db URL                 apply the migrations
    outpost db sample --db URL [--seed N]      migrations + the deterministic sample data set
    outpost db load FILE --db URL              import a JSON/YAML description
    outpost origin [--db URL] [--host H] [--port P] [--sample] [--config FILE]

Options left unset fall back to the TOML file and `OUTPOST_ORIGIN_*` variables.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from outpost.config import SettingsError, load_settings
from outpost.errors import OutpostError

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="outpost", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    db = commands.add_parser("db", help="create, fill and import into the conditions database")
    db_commands = db.add_subparsers(dest="db_command", required=True)
    for name, text in (("init", "apply the migrations"), ("sample", "create the sample data")):
        sub = db_commands.add_parser(name, help=text)
        _db_options(sub)
        if name == "sample":
            sub.add_argument("--seed", type=int, default=1, help="sample generator seed")
    load = db_commands.add_parser("load", help="import a JSON/YAML description of conditions")
    load.add_argument("file", type=Path)
    _db_options(load)

    origin = commands.add_parser("origin", help="serve the conditions database over HTTP")
    _db_options(origin)
    origin.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    origin.add_argument("--port", type=int, help="port to listen on (default 8080)")
    origin.add_argument("--workers", type=int, help="uvicorn worker processes (default 1)")
    origin.add_argument("--tokens-file", type=Path, help="TOML file of write tokens")
    origin.add_argument(
        "--sample", action="store_true", help="create the sample data set if the database is empty"
    )
    origin.add_argument("--log-level", default="info", help="uvicorn log level")
    return parser


def _db_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", help="database URL (default sqlite:///outpost.sqlite)")
    parser.add_argument("--config", type=Path, help="TOML settings file ([origin] table)")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    try:
        return _run(args)
    except (SettingsError, OutpostError) as exc:
        print(f"outpost: {exc}", file=sys.stderr)
        return 2


def _origin_settings(args: argparse.Namespace, **overrides: Any) -> Any:
    from origin.settings import OriginSettings

    return load_settings(
        OriginSettings, "origin", config_file=args.config, overrides={"db": args.db, **overrides}
    )


def _run(args: argparse.Namespace) -> int:
    from origin.db import create_engines, migrate

    if args.command == "db":
        settings = _origin_settings(args)
        migrate(settings.db)
        if args.db_command == "init":
            print(f"migrated {settings.db}")
        elif args.db_command == "sample":
            return _sample(settings.db, args.seed)
        else:
            from origin.app import system_clock
            from origin.load import load_file
            from origin.writes import Writes

            engines = create_engines(settings.db)
            try:
                summary = load_file(args.file, Writes(engines.writer, system_clock))
            finally:
                engines.dispose()
            print(f"loaded {summary}")
        return 0

    settings = _origin_settings(
        args,
        host=args.host,
        port=args.port,
        workers=args.workers,
        tokens_file=args.tokens_file,
    )
    migrate(settings.db)
    if args.sample:
        _sample(settings.db, seed=1, only_if_empty=True)
    return _serve_origin(settings, args.log_level)


def _sample(url: str, seed: int, only_if_empty: bool = False) -> int:
    from sqlalchemy import func, select

    from origin.db import create_engines
    from origin.sample import build_sample
    from origin.schema import tags

    engines = create_engines(url)
    try:
        with engines.reader.connect() as conn:
            if conn.scalar(select(func.count()).select_from(tags)):
                if only_if_empty:
                    return 0
                print(f"outpost: {url} already holds tags; sample needs an empty database")
                return 2
        summary = build_sample(engines.writer, seed)
    finally:
        engines.dispose()
    print(
        f"sample data in {url}: {summary.global_tags} global tags, {summary.tags} tags, "
        f"{summary.iovs} IOVs, {summary.payloads} payloads ({summary.payload_bytes:,} bytes)"
    )
    return 0


def _serve_origin(settings: Any, log_level: str) -> int:
    import uvicorn

    from origin.app import create_app

    print(f"outpost origin on http://{settings.host}:{settings.port} over {settings.db}")
    if settings.workers == 1:
        uvicorn.run(
            create_app(settings), host=settings.host, port=settings.port, log_level=log_level
        )
        return 0
    # Worker processes rebuild the settings from the environment.
    for field in dataclasses.fields(settings):
        value = getattr(settings, field.name)
        if value is not None:
            text = ",".join(value) if isinstance(value, tuple) else str(value)
            os.environ[f"OUTPOST_ORIGIN_{field.name.upper()}"] = text
    uvicorn.run(
        "origin.main:app_from_environment",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        log_level=log_level,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
