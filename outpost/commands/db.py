"""`outpost db init | sample | load | payloads`: create, fill and import into the conditions
database, and move payload bytes between it and the file store."""

from __future__ import annotations

import argparse
import getpass
import logging
import os
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from outpost.commands.output import CommandFailed
from outpost.config import load_settings

__all__ = ["add_parser", "database_errors", "fill_sample", "origin_settings", "shown"]


def shown(url: str) -> str:
    """A database URL fit for a log: the password masked."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # a malformed URL fails later with its own error
        return "<database URL>"


@contextmanager
def database_errors(url: str) -> Iterator[None]:
    """A database that cannot be opened or read (corrupt file, missing directory, server down)
    becomes one line naming it and the problem, exit status 1, instead of a traceback."""
    from sqlalchemy.exc import SQLAlchemyError

    from origin.db import describe
    from outpost.errors import ServiceUnavailable

    try:
        yield
    except SQLAlchemyError as exc:
        raise ServiceUnavailable(f"database {shown(url)}: {describe(exc)}") from None


def db_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", help="database URL (default sqlite:///outpost.sqlite)")
    parser.add_argument("--config", type=Path, help="TOML settings file ([origin] table)")


def origin_settings(args: argparse.Namespace, **overrides: Any) -> Any:
    from origin.settings import OriginSettings

    return load_settings(
        OriginSettings, "origin", config_file=args.config, overrides={"db": args.db, **overrides}
    )


def _quiet_audit() -> None:
    """A bulk import prints its summary; its writes' audit lines stay in the database (the
    changes table and the histories), not one log line per object on the terminal."""
    logging.getLogger("outpost.origin.audit").setLevel(logging.WARNING)


def add_parser(commands: Any) -> None:
    db = commands.add_parser("db", help="create, fill and import into the conditions database")
    db_commands = db.add_subparsers(dest="db_command", required=True)
    init = db_commands.add_parser("init", help="apply the migrations")
    db_options(init)
    init.set_defaults(handler=_init)
    sample = db_commands.add_parser("sample", help="create the deterministic sample data set")
    db_options(sample)
    sample.add_argument("--seed", type=int, default=1, help="sample generator seed")
    sample.set_defaults(handler=_sample)
    load = db_commands.add_parser("load", help="import a JSON/YAML description of conditions")
    load.add_argument("file", type=Path)
    db_options(load)
    load.set_defaults(handler=_load)
    move = db_commands.add_parser(
        "payloads", help="move payload bytes between the database and the file store"
    )
    move.add_argument("--to", choices=("files", "database"), required=True)
    move.add_argument(
        "--payload-dir",
        type=Path,
        help="the file store (default: payloads/ beside a SQLite database)",
    )
    db_options(move)
    move.set_defaults(handler=_payloads)


def _init(args: argparse.Namespace) -> int:
    from origin.db import migrate

    settings = origin_settings(args)
    with database_errors(settings.db):
        migrate(settings.db)
    print(f"migrated {shown(settings.db)}")
    return 0


def _sample(args: argparse.Namespace) -> int:
    from origin.db import migrate

    settings = origin_settings(args)
    _quiet_audit()
    with database_errors(settings.db):
        migrate(settings.db)
        return fill_sample(settings.db, args.seed)


def _load(args: argparse.Namespace) -> int:
    from origin.app import system_clock
    from origin.db import create_engines, migrate
    from origin.load import load_file
    from origin.writes import Writes

    if not _names_database(args):
        raise CommandFailed(
            "db load writes into a database: name it with --db (or `db` in the [origin] table "
            "of --config, or OUTPOST_ORIGIN_DB)",
            code=2,
        )
    settings = origin_settings(args)
    _quiet_audit()
    with database_errors(settings.db):
        migrate(settings.db)
        engines = create_engines(settings.db)
        try:
            who = f"{_user()} (outpost db load {args.file.name})"
            summary = load_file(args.file, Writes(engines.writer, system_clock, who=who))
        finally:
            engines.dispose()
    print(
        f"loaded {args.file} into {shown(settings.db)}: {summary.payloads} payloads, "
        f"{summary.tags} tags, {summary.iovs} IOVs, {summary.global_tags} global tags"
    )
    return 0


def _user() -> str:
    """Who runs this command, for the audit trail of what it writes."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a container)
        return f"uid {os.getuid()}"


def _names_database(args: argparse.Namespace) -> bool:
    """Whether the database was named (flag, environment or settings file), not defaulted."""
    if args.db or os.environ.get("OUTPOST_ORIGIN_DB"):
        return True
    if args.config is None:
        return False
    try:
        table = tomllib.loads(Path(args.config).read_text()).get("origin", {})
    except (OSError, tomllib.TOMLDecodeError):
        return True  # load_settings names the problem with the file
    return isinstance(table, dict) and "db" in table


def _payloads(args: argparse.Namespace) -> int:
    from origin.db import create_engines, migrate
    from origin.payloadfiles import PayloadFileError, PayloadFiles
    from origin.payloadmove import move_payloads

    settings = origin_settings(args, payload_dir=args.payload_dir)
    root = settings.payload_files_dir()
    if root is None:
        raise CommandFailed(
            "give --payload-dir: the database is not SQLite, so there is no default", code=2
        )
    with database_errors(settings.db):
        migrate(settings.db)
        engines = create_engines(settings.db)
        try:
            result = move_payloads(engines.writer, PayloadFiles(root), args.to)
        except (PayloadFileError, OSError) as exc:
            raise CommandFailed(f"nothing moved: {exc}") from None
        finally:
            engines.dispose()
    where = f"the file store {root}" if args.to == "files" else f"the database {shown(settings.db)}"
    print(f"moved {result.moved} payloads ({result.bytes:,} bytes) to {where}")
    if args.to == "files":
        print(f'set payload_store = "files" and payload_dir = "{root}" in [origin]')
    return 0


def fill_sample(url: str, seed: int, only_if_empty: bool = False) -> int:
    """Build the sample data set in a migrated database; refuse if it holds tags already."""
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
                raise CommandFailed(
                    f"{shown(url)} already holds tags; sample needs an empty database"
                )
        summary = build_sample(engines.writer, seed)
    finally:
        engines.dispose()
    print(
        f"sample data in {shown(url)}: {summary.global_tags} global tags, {summary.tags} tags, "
        f"{summary.iovs} IOVs, {summary.payloads} payloads ({summary.payload_bytes:,} bytes)"
    )
    return 0
