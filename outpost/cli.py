"""The `outpost` command.

    outpost db init | sample | load      the conditions database
    outpost origin                       serve it over HTTP
    outpost proxy                        a caching proxy (node, site or central tier)
    outpost flush --run R --proxy URL    flush a cache tree before a run
    outpost sync --from URL --to DB      copy global tags from an origin into a database

Options left unset fall back to the TOML file (`--config`) and `OUTPOST_<SECTION>_*` variables.

Exit status, as tools expect: 0 done; 1 it could not be done (an unreachable or degraded cache,
a file whose data is refused, a database that cannot be opened); 2 the command line or the
settings are wrong; 130 interrupted; 141 the reader of the output went away (`| head`); 70 a bug
in Outpost (one line; `OUTPOST_DEBUG=1` shows the traceback). A command never prints a
traceback, and with `--json` its errors are JSON on stdout too: `{"error", "detail"}`.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

import orjson

from outpost import __version__, extras, logsafe
from outpost.commands import (
    checkconfig,
    db,
    loadtest,
    prepare,
    pushtest,
    runcontrol,
    serve,
    stack,
    sync,
)
from outpost.commands.output import CommandFailed
from outpost.config import SettingsError
from outpost.errors import OutpostError

__all__ = ["main"]

EXIT_FAILED, EXIT_USAGE, EXIT_BUG, EXIT_INTERRUPTED, EXIT_BROKEN_PIPE = 1, 2, 70, 130, 141


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="outpost", description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--version", action="version", version=f"outpost {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    modules = (db, serve, runcontrol, prepare, checkconfig, stack, loadtest, pushtest, sync)
    for module in modules:
        module.add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logsafe.install()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        extras.require_for(args)  # one line naming the missing pip extra
        return int(args.handler(args))
    except SettingsError as exc:
        return _failed(args, "usage", str(exc), EXIT_USAGE)
    except CommandFailed as exc:
        return _failed(args, "failed", str(exc), exc.code)
    except OutpostError as exc:
        return _failed(args, exc.error, exc.detail, EXIT_FAILED)
    except KeyboardInterrupt:
        return _failed(args, "interrupted", "interrupted", EXIT_INTERRUPTED)
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except Exception as exc:
        if os.environ.get("OUTPOST_DEBUG"):
            raise
        detail = f"{type(exc).__name__}: {exc} (a bug in Outpost; OUTPOST_DEBUG=1 shows where)"
        return _failed(args, "internal error", detail, EXIT_BUG)


def _failed(args: argparse.Namespace, error: str, detail: str, code: int) -> int:
    """Say what went wrong in one line, as JSON on stdout if `--json` was asked for."""
    try:
        if getattr(args, "json", False):
            print(orjson.dumps({"error": error, "detail": detail}).decode(), flush=True)
        else:
            print(f"outpost: {detail}", file=sys.stderr, flush=True)
    except BrokenPipeError:
        _silence_stdout()
    return code


def _silence_stdout() -> None:
    """The reader is gone: send what is still buffered nowhere, so exiting raises nothing."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # stdout is not a file (captured): nothing to flush there
        pass


if __name__ == "__main__":
    sys.exit(main())
