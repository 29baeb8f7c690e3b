"""Which pip extra each `outpost` command needs, checked before the command runs.

The base package is the client library and the CLI; the servers' dependencies are extras
(pyproject.toml), so a farm node's environment holds the proxy's and nothing else. Without this
check a command run without its extra dies on a `ModuleNotFoundError` deep in a traceback; with
it, one line says what to install. Each extra is proven by the modules it brings that the
command imports (`importlib.util.find_spec`: nothing is imported here).
"""

from __future__ import annotations

import argparse
import importlib.util
from typing import Final

from outpost.config import SettingsError

__all__ = ["COMMANDS", "EXTRAS", "MissingExtra", "missing", "require", "require_for"]

# extra -> the top-level modules it provides that Outpost imports
EXTRAS: Final[dict[str, tuple[str, ...]]] = {
    "proxy": (
        "starlette",
        "uvicorn",
        "aiohttp",
        "prometheus_client",
        "cachetools",
        "redis",
        "jinja2",
    ),
    "origin": (
        "starlette",
        "uvicorn",
        "sqlalchemy",
        "alembic",
        "psycopg",
        "prometheus_client",
        "yaml",
        "sqlglot",
        "jinja2",
    ),
    "loadtest": ("locust", "gevent", "matplotlib"),
    "granian": ("granian",),
}

# command -> the extras it needs; a command not named here needs the base package only
COMMANDS: Final[dict[str, tuple[str, ...]]] = {
    "origin": ("origin",),
    "db": ("origin",),
    "sync": ("origin",),  # writes a database with the origin's write code
    "proxy": ("proxy",),
    "check-config": (),  # the extras of the settings it is given: `--origin`, `--proxy`
    "up": ("origin", "proxy"),  # starts an origin and proxies
    "demo": ("origin", "proxy"),
    "loadtest": ("origin", "proxy", "loadtest"),
    "pushtest": ("origin", "proxy", "loadtest"),
}


class MissingExtra(SettingsError):
    """A command whose extra is not installed; the message is the pip command that fixes it."""


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def missing(command: str, *, server: str | None = None) -> list[str]:
    """The extras `command` needs that are not installed (`server="granian"` adds granian)."""
    needed = list(COMMANDS.get(command, ()))
    if server == "granian":
        needed.append("granian")
    return [extra for extra in needed if not all(map(_installed, EXTRAS[extra]))]


def require(command: str, *, server: str | None = None) -> None:
    """Raise `MissingExtra` naming what to install if `command` cannot run here."""
    absent = missing(command, server=server)
    if absent:
        wanted = f"outpost[{','.join(absent)}]"
        modules = dict.fromkeys(m for e in absent for m in EXTRAS[e] if not _installed(m))
        raise MissingExtra(
            f"`outpost {command}` needs {wanted} ({', '.join(modules)} not installed):"
            f" pip install '{wanted}'"
        )


def require_for(args: argparse.Namespace) -> None:
    """`require` for parsed `outpost` arguments (`--server`/`--proxy-server` granian included)."""
    server = getattr(args, "server", None) or getattr(args, "proxy_server", None)
    require(str(args.command), server=server)
