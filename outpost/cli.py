"""The `outpost` command.

    outpost db init | sample | load      the conditions database
    outpost origin                       serve it over HTTP
    outpost proxy                        a caching proxy (node, site or central tier)
    outpost flush --run R --proxy URL    flush a cache tree before a run

Options left unset fall back to the TOML file (`--config`) and `OUTPOST_<SECTION>_*` variables.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from outpost import extras, logsafe
from outpost.commands import db, loadtest, pushtest, runcontrol, serve, stack
from outpost.config import SettingsError
from outpost.errors import OutpostError

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="outpost", description=(__doc__ or "").split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for module in (db, serve, runcontrol, stack, loadtest, pushtest):
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
    except (SettingsError, OutpostError) as exc:
        print(f"outpost: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
