"""`outpost origin` and `outpost proxy`: the servers, on uvicorn.

With `--workers N > 1` uvicorn starts worker processes that each rebuild the settings from
`OUTPOST_<SECTION>_*` variables, which this command exports first. Both servers lift their
soft RLIMIT_NOFILE to the hard limit before anything opens (`outpost.limits.raise_nofile`;
workers inherit it) and run on `outpost.connections.LimitedProtocol` or a subclass of it.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from pathlib import Path
from typing import Any

from outpost.commands.db import (
    database_errors,
    db_options,
    fill_sample,
    origin_settings,
    shown,
)
from outpost.config import load_settings
from outpost.limits import raise_nofile

__all__ = ["add_parser"]

HYPER_MIN_BUFFER = 8192  # hyper refuses a smaller max_buffer_size


def add_parser(commands: Any) -> None:
    origin = commands.add_parser("origin", help="serve the conditions database over HTTP")
    db_options(origin)
    origin.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    origin.add_argument("--port", type=int, help="port to listen on (default 8080)")
    origin.add_argument("--workers", type=int, help="uvicorn worker processes (default 1)")
    origin.add_argument("--tokens-file", type=Path, help="TOML file of write tokens")
    origin.add_argument(
        "--sample", action="store_true", help="create the sample data set if the database is empty"
    )
    origin.add_argument("--log-level", default="info", **LOG_LEVEL)
    origin.set_defaults(handler=_origin)

    proxy = commands.add_parser("proxy", help="run a caching proxy (node, site or central)")
    proxy.add_argument("--config", type=Path, help="TOML settings file ([proxy] table)")
    proxy.add_argument("--name", help="this cache's name in Cache-Status and the tree")
    proxy.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    proxy.add_argument("--port", type=int, help="port to listen on (default 8081)")
    proxy.add_argument(
        "--upstream", action="append", help="upstream URL, in failover order (repeat)"
    )
    proxy.add_argument("--parent", help="parent proxy URL to register with (flush fan-out)")
    proxy.add_argument("--advertise-url", help="URL the parent reaches this proxy at")
    proxy.add_argument(
        "--subscribe",
        action=argparse.BooleanOptionalAction,
        help="follow the upstream's change feed (default: on when --parent is given)",
    )
    proxy.add_argument(
        "--subscribe-tags",
        action="append",
        metavar="GLOB",
        help="hold the announced payloads of these tags only (repeat; default all)",
    )
    proxy.add_argument(
        "--subscribe-globaltag",
        action="append",
        metavar="NAME",
        help="hold the announced payloads of the tags this global tag maps (repeat)",
    )
    proxy.add_argument("--redis", help="Redis URL of the site's shared cache tier")
    proxy.add_argument("--cache-size", help="memory cache size, e.g. 512MiB")
    proxy.add_argument("--workers", type=int, help="uvicorn worker processes (default 1)")
    proxy.add_argument("--state-dir", type=Path, help="shared state of the worker processes")
    proxy.add_argument("--server", choices=("uvicorn", "granian"), help="HTTP server (uvicorn)")
    proxy.add_argument("--log-level", default="warning", **LOG_LEVEL)
    proxy.set_defaults(handler=_proxy)


LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")  # uvicorn's
LOG_LEVEL: dict[str, Any] = {"type": str.lower, "choices": LOG_LEVELS, "help": "server log level"}


def _origin(args: argparse.Namespace) -> int:
    from origin.db import migrate
    from outpost.connections import LimitedProtocol

    raise_nofile()
    settings = origin_settings(
        args, host=args.host, port=args.port, workers=args.workers, tokens_file=args.tokens_file
    )
    with database_errors(settings.db):  # one line naming the database, not a traceback
        migrate(settings.db)
        if args.sample:
            fill_sample(settings.db, seed=1, only_if_empty=True)
    print(f"outpost origin on http://{settings.host}:{settings.port} over {shown(settings.db)}")
    if settings.workers == 1:
        from origin.app import create_app

        return _serve(create_app(settings), settings, args.log_level, http=LimitedProtocol)
    _export(settings, "ORIGIN")
    return _serve(
        "origin.main:app_from_environment", settings, args.log_level, http=LimitedProtocol
    )


def _proxy(args: argparse.Namespace) -> int:
    from proxy.settings import ProxySettings, with_run_control_token

    overrides = {
        "name": args.name,
        "host": args.host,
        "port": args.port,
        "upstreams": tuple(args.upstream) if args.upstream else None,
        "parent": args.parent,
        "advertise_url": args.advertise_url,
        "subscribe": args.subscribe,
        "subscribe_tags": tuple(args.subscribe_tags) if args.subscribe_tags else None,
        "subscribe_globaltags": (
            tuple(args.subscribe_globaltag) if args.subscribe_globaltag else None
        ),
        "redis": args.redis,
        "cache_size": args.cache_size,
        "workers": args.workers,
        "state_dir": args.state_dir,
        "server": args.server,
    }
    raise_nofile()
    settings = with_run_control_token(
        load_settings(ProxySettings, "proxy", config_file=args.config, overrides=overrides)
    )
    from outpost.redact import redact_url

    upstreams = ", ".join(redact_url(u) for u in settings.upstreams)
    print(f"outpost proxy {settings.name} on http://{settings.host}:{settings.port} -> {upstreams}")
    if settings.server == "granian":
        _export(settings, "PROXY")
        return _serve_granian("proxy.main:app_from_environment", settings, args.log_level)
    from proxy.protocol import HitProtocol  # plain hits answered below ASGI

    if settings.workers == 1:
        from outpost.runtime import tune_process
        from proxy.app import create_app

        app: Any = create_app(settings, quiet_gc=True)
        tune_process(os.environ)  # after the app is built: its objects are frozen too
    else:
        _export(settings, "PROXY")
        app = "proxy.main:app_from_environment"
    return _serve(app, settings, args.log_level, own_headers=False, http=HitProtocol)


def _export(settings: Any, section: str) -> None:
    for field in dataclasses.fields(settings):
        value = getattr(settings, field.name)
        if value is not None:
            text = ",".join(value) if isinstance(value, tuple) else str(value)
            os.environ[f"OUTPOST_{section}_{field.name.upper()}"] = text


def _serve(
    app: Any, settings: Any, log_level: str, *, own_headers: bool = True, http: Any = "auto"
) -> int:
    """Run on uvicorn; a proxy passes `own_headers=False` to keep the origin's Date and Server.
    `http` is the protocol class (both programs pass one of `outpost.connections`)."""
    import uvicorn

    keepalive = getattr(settings, "keepalive_seconds", 5)  # the origin keeps uvicorn's default
    factory = isinstance(app, str)
    uvicorn.run(
        app,
        factory=factory,
        host=settings.host,
        port=settings.port,
        workers=settings.workers if factory else None,
        log_level=log_level,
        access_log=False,  # Outpost's own (`access_log` setting) records every request
        timeout_graceful_shutdown=5,
        timeout_keep_alive=keepalive,
        server_header=own_headers,
        date_header=own_headers,
        proxy_headers=own_headers,  # a proxy does not rewrite client addresses from headers
        http=http,
    )
    return 0


def _serve_granian(factory: str, settings: Any, log_level: str) -> int:
    """Run on granian (Rust HTTP/1.1 server, same ASGI app); workers rebuild from the env."""
    from outpost.extras import require

    require("proxy", server="granian")  # chosen by a settings file, not seen before the command
    from granian import Granian
    from granian.http import HTTP1Settings

    levels = {"debug", "info", "warning", "error", "critical"}
    Granian(
        factory,
        address=settings.host,
        port=settings.port,
        interface="asgi",  # type: ignore[arg-type]
        workers=settings.workers,
        factory=True,
        websockets=False,
        backlog=2048,
        # hyper's header-read timeout is what closes an idle keep-alive connection, and one
        # whose head is not complete; its read buffer bounds a head (hyper answers 431 past
        # it, and past 100 header fields). No connection cap: docs/security.md,
        # "Connections: header size, header time, connection count".
        http1_settings=HTTP1Settings(
            header_read_timeout=settings.keepalive_seconds * 1000,
            max_buffer_size=max(HYPER_MIN_BUFFER, settings.max_header_bytes),
        ),
        log_level=log_level if log_level in levels else "warning",  # type: ignore[arg-type]
        log_access=log_level == "debug",
    ).serve()
    return 0
