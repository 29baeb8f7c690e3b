"""`outpost check-config`: load an origin's or a proxy's settings as the server would and say
what start-up would refuse, or what would break the tree, without starting anything (like
`nginx -t` or `squid -k parse`). Exit 0 when every file given is fine, 2 when one is not.

Nothing is written and nothing is connected to. The database URL is checked for its form and
driver, a SQLite file for being one in a directory that exists, not for a live answer: a check
must also run where the database is out of reach (a build host, CI) and must never leave an
empty SQLite file behind. `/_outpost/readyz` says whether a running origin reads its database.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson

from outpost import extras
from outpost.commands.output import dash
from outpost.config import SettingsError, load_settings
from outpost.redact import MASK, redact_text, redact_url

__all__ = ["Report", "add_parser", "check_origin", "check_proxy"]

SQLITE_MAGIC = b"SQLite format 3\x00"
KINDS = ("origin", "proxy")


@dataclass
class Report:
    """What checking one settings source found: problems (none: ok) and the values that matter,
    secrets masked."""

    kind: str
    source: str
    problems: list[str] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems

    def document(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "file": self.source,
            "ok": self.ok,
            "problems": self.problems,
            "settings": self.summary,
        }


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "check-config", help="check origin and proxy settings without starting a server"
    )
    for kind in KINDS:
        parser.add_argument(
            f"--{kind}",
            nargs="?",
            const="",
            metavar="FILE",
            help=f"the {kind}'s TOML file ([{kind}] table); without FILE: the environment alone",
        )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(handler=_check)


def _check(args: argparse.Namespace) -> int:
    given = {kind: getattr(args, kind) for kind in KINDS if getattr(args, kind) is not None}
    if not given:
        raise SettingsError("check-config needs --origin [FILE] or --proxy [FILE]")
    reports = []
    for kind, file in given.items():
        try:
            extras.require(kind)  # the settings modules are the server's
        except extras.MissingExtra as exc:
            raise extras.MissingExtra(f"check-config --{kind}: {exc}") from None
        check = check_origin if kind == "origin" else check_proxy
        reports.append(check(Path(file) if file else None))
    ok = all(report.ok for report in reports)
    if args.json:
        document: dict[str, Any] = {"ok": ok, "checked": [r.document() for r in reports]}
        if not ok:
            first = next(r for r in reports if not r.ok)
            document |= {"error": "usage", "detail": f"{first.kind}: {first.problems[0]}"}
        print(orjson.dumps(document).decode())
    else:
        for report in reports:
            _print(report)
    return 0 if ok else 2


def _print(report: Report) -> None:
    where = f"{report.kind} settings {report.source}"
    for problem in report.problems:
        print(f"{where}: {problem}")
    if report.ok:
        print(f"{where}: ok")
        for key, value in report.summary.items():
            print(f"  {key} = {dash(value)}")


def _source(kind: str, file: Path | None, environ: Mapping[str, str]) -> str:
    if file is not None:
        return str(file)
    return environ.get(f"OUTPOST_{kind.upper()}_CONFIG") or "(environment)"


# --- the origin ---------------------------------------------------------------------------


def check_origin(file: Path | None, environ: Mapping[str, str] | None = None) -> Report:
    """The origin's settings from `file` and `OUTPOST_ORIGIN_*`, as `outpost origin` reads them
    (without its command-line options), and the files start-up opens."""
    from origin.auth import TokenBook
    from origin.settings import OriginSettings

    environ = os.environ if environ is None else environ
    report = Report("origin", _source("origin", file, environ))
    try:
        settings = load_settings(OriginSettings, "origin", config_file=file, environ=environ)
    except SettingsError as exc:
        report.problems.append(str(exc))
        return report
    report.problems += _database(settings.db)
    tokens: int | None = None
    try:
        tokens = TokenBook.from_file(settings.tokens_file).count
    except SettingsError as exc:
        report.problems.append(str(exc))
    files_dir = settings.payload_files_dir() if settings.payload_store == "files" else None
    if files_dir is not None:
        report.problems += _creatable_dir("origin.payload_dir", files_dir)
    report.summary = {
        "db": _shown_database(settings.db),
        "listen": f"{settings.host}:{settings.port}",
        "workers": settings.workers,
        "tokens_file": (
            f"{settings.tokens_file} ({tokens} token{'' if tokens == 1 else 's'})"
            if settings.tokens_file
            else "none (every write is refused)"
        ),
        "payload_store": settings.payload_store + (f" in {files_dir}" if files_dir else ""),
    }
    return report


def _shown_database(url: str) -> str:
    from outpost.commands.db import shown

    return shown(url)


def _database(url: str) -> list[str]:
    """What the origin would refuse in its database URL, and for SQLite in its file."""
    from sqlalchemy.engine import make_url

    from origin.db import normalise_url
    from outpost.errors import OutpostError

    try:
        normal = normalise_url(url)
    except OutpostError as exc:
        return [f"origin.db: {redact_text(exc.detail)} (accepted: {exc.accepted})"]
    except ValueError as exc:  # SQLAlchemy's own parse of a port that is not a number
        return [f"origin.db: database URL {redact_url(url)!r} is malformed: {exc}"]
    parsed = make_url(normal)
    if parsed.drivername != "sqlite" or not parsed.database:
        return []  # a server: whether it answers is /_outpost/readyz's question
    path = Path(parsed.database)
    if not path.parent.is_dir():
        return [f"origin.db: directory {path.parent} does not exist"]
    if not path.exists():
        writable = os.access(path.parent, os.W_OK)
        return [] if writable else [f"origin.db: cannot create {path}: directory not writable"]
    try:
        with path.open("rb") as database:
            head = database.read(len(SQLITE_MAGIC))
    except OSError as exc:
        return [f"origin.db: cannot read {path}: {exc.strerror}"]
    if head and head != SQLITE_MAGIC:
        return [f"origin.db: {path} is not a SQLite database"]
    return []


def _creatable_dir(key: str, path: Path) -> list[str]:
    """Problems with a directory the server creates if missing and then writes into."""
    if path.exists():
        if not path.is_dir():
            return [f"{key}={str(path)!r} is not a directory"]
        return [] if os.access(path, os.W_OK) else [f"{key}={str(path)!r} is not writable"]
    existing = next((p for p in path.absolute().parents if p.exists()), None)
    if existing is None or not existing.is_dir() or not os.access(existing, os.W_OK):
        return [f"{key}={str(path)!r} cannot be created ({existing} is not a writable directory)"]
    return []


# --- a proxy -----------------------------------------------------------------------------


def check_proxy(file: Path | None, environ: Mapping[str, str] | None = None) -> Report:
    """A proxy's settings from `file`, `OUTPOST_PROXY_*` and `OUTPOST_RUN_CONTROL_TOKEN`, as
    `outpost proxy` reads them (without its command-line options), and what would break its
    place in the tree."""
    from proxy.settings import ProxySettings, with_run_control_token

    environ = os.environ if environ is None else environ
    report = Report("proxy", _source("proxy", file, environ))
    try:
        settings = with_run_control_token(
            load_settings(ProxySettings, "proxy", config_file=file, environ=environ), environ
        )
    except SettingsError as exc:
        report.problems.append(str(exc))
        return report
    report.problems += _proxy_urls(settings)
    report.problems += _proxy_tree(settings)
    if settings.state_dir is not None:
        report.problems += _creatable_dir("proxy.state_dir", settings.state_dir)
    if settings.server == "granian" and extras.missing("proxy", server="granian"):
        report.problems.append("proxy.server = granian needs pip install 'outpost[granian]'")
    secret = {True: MASK, False: None}
    report.summary = {
        "name": settings.name,
        "listen": f"{settings.host}:{settings.port}",
        "upstreams": ", ".join(redact_url(u) for u in settings.upstreams),
        "parent": redact_url(settings.parent) if settings.parent else None,
        "advertise_url": redact_url(settings.url),
        "redis": redact_url(settings.redis) if settings.redis else None,
        "cache_size": f"{settings.cache_size / 2**20:g} MiB",
        "workers": settings.workers,
        "server": settings.server,
        "run_control_token": secret[settings.run_control_token is not None],
        "register_token": secret[settings.register_token is not None],
        "tree_signing_key": secret[settings.tree_signing_key is not None],
        "tree_public_key": settings.tree_public_key,  # public: shown, to compare across a tree
    }
    return report


def _proxy_urls(settings: Any) -> list[str]:
    """URLs the proxy would fail on at its first request rather than at start-up."""
    problems = []
    named = [("proxy.upstreams", u) for u in settings.upstreams]
    named += [(f"proxy.{k}", getattr(settings, k)) for k in ("parent", "advertise_url", "redis")]
    for key, url in named:
        if url is None:
            continue
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 - raises ValueError for a port that is not one
        except ValueError as exc:
            problems.append(f"{key}: {redact_url(url)!r}: {exc}")
            continue
        if key == "proxy.redis":
            if parts.scheme not in ("redis", "rediss", "unix"):
                problems.append(f"{key}: {redact_url(url)!r} is not a redis:// or rediss:// URL")
        elif not parts.hostname:
            problems.append(f"{key}: {redact_url(url)!r} names no host")
    return problems


def _proxy_tree(settings: Any) -> list[str]:
    """A child that could not register, could not check its parent's commands, or tells its
    parent an address of the parent's own machine (docs/operations.md, "the two mistakes")."""
    from proxy.core.signing import Verifier

    problems = []
    if settings.tree_public_key and not settings.tree_signing_key:
        try:
            Verifier(settings.tree_public_key)
        except ValueError as exc:
            problems.append(f"proxy.tree_public_key: {exc}")
    if settings.parent is None:
        return problems
    if not settings.register_token:
        problems.append(
            "proxy.parent is set but proxy.register_token is not: the parent refuses the "
            "registration (OUTPOST_PROXY_REGISTER_TOKEN, the same on every proxy of the tree)"
        )
    if not settings.tree_public_key:
        problems.append(
            "proxy.parent is set but proxy.tree_public_key is not: this proxy would refuse every "
            "flush, warm and purge its parent forwards (OUTPOST_PROXY_TREE_PUBLIC_KEY)"
        )
    advertised = urlsplit(settings.advertise_url).hostname if settings.advertise_url else None
    advertised = advertised or settings.host
    parent = urlsplit(settings.parent).hostname or ""
    if _unreachable_from_elsewhere(advertised) and not _loopback(parent):
        problems.append(
            f"proxy.advertise_url: this proxy would tell its parent {redact_url(settings.url)}, "
            "an address of the parent's own machine; set advertise_url to this proxy's address "
            "as the parent sees it"
        )
    return problems


def _unreachable_from_elsewhere(host: str) -> bool:
    return host in ("0.0.0.0", "::", "localhost") or _loopback(host)


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
