"""The proxy's settings (`[proxy]` in the TOML file, `OUTPOST_PROXY_*` variables).

The run-control token also comes from `OUTPOST_RUN_CONTROL_TOKEN`, the variable `outpost flush`
sends. Proxies never send it anywhere: they register with `register_token` and forward commands
signed with `tree_signing_key`, which children check with `tree_public_key`
(docs/security.md, "Run control's authority and secrets").
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import urlsplit

from outpost.config import SettingsError
from outpost.logformat import FORMATS as LOG_FORMATS
from outpost.redact import redact_url
from outpost.urls import is_plain_name
from proxy.core.clients import DEFAULT_CLIENT_NETWORKS, ClientNetworks
from proxy.core.epochs import DEFAULT_MAX_STEP
from proxy.core.forward import Destinations
from proxy.core.signing import public_key_of

__all__ = ["SERVERS", "ProxySettings", "with_run_control_token"]

SERVERS = ("uvicorn", "granian")  # granian: a Rust HTTP server for the same ASGI app, faster


@dataclass(frozen=True)
class ProxySettings:
    name: str = ""  # default: <hostname>-<port>, unique on a farm
    host: str = "127.0.0.1"
    port: int = 8081
    upstreams: tuple[str, ...] = ()
    parent: str | None = None
    advertise_url: str | None = None
    redis: str | None = None
    redis_retry_seconds: float = 5.0
    cache_size: int = 512 * 1024 * 1024
    max_object_bytes: int = 64 * 1024 * 1024
    # Answers at least this large (with a Content-Length) reach waiters while they arrive;
    # smaller ones are read whole first, so a failed check can fail over within the fetch. 0: off.
    relay_from_bytes: int = 1024 * 1024
    stale_if_error_seconds: float = 86_400.0
    # Longest a negative answer for a payload URL (a 404 while it is being uploaded) is kept.
    negative_ttl_seconds: int = 60
    connect_timeout_seconds: float = 2.0
    read_timeout_seconds: float = 30.0
    retries: int = 1
    breaker_failures: int = 3
    breaker_cooldown_seconds: float = 5.0
    coalesce_timeout_seconds: float = 60.0
    flush_concurrency: int = 256
    flush_timeout_seconds: float = 10.0
    heartbeat_seconds: float = 10.0
    # How often the dashboard (`/_outpost/ui/`) samples this proxy's totals (about 10 minutes
    # of samples are kept in memory, at most 600).
    dashboard_sample_seconds: float = 5.0
    child_expiry_seconds: float = 600.0
    run_control_token: str | None = None
    # Children send it to register (and nothing else); a parent accepts it for register only.
    register_token: str | None = None
    # Ed25519 key (base64url seed) that signs flushes and warms forwarded to children.
    tree_signing_key: str | None = None
    # Its public half: what a child accepts signed commands with (derived from the signing key).
    tree_public_key: str | None = None
    signature_window_seconds: float = 30.0
    # How far one flush, heartbeat or upstream answer may move the epoch forward.
    max_epoch_step: int = DEFAULT_MAX_STEP
    # HMAC key of the entries in Redis (L2); required with `redis`.
    shared_tier_key: str | None = None
    workers: int = 1
    server: str = "uvicorn"
    state_dir: Path | None = None
    max_request_body_bytes: int = 64 * 1024 * 1024 + 65_536
    # Idle client connections stay open this long (squid's client_idle_pconn_timeout is 2 min):
    # farm nodes keep theirs from one run to the next instead of reconnecting all at once.
    keepalive_seconds: int = 120
    # What one client connection may hold (outpost.limits): head bytes (request line + header
    # fields; squid's request_header_max_size, 64 KB, applies to each of the two) and fields,
    # time from connection start or a head's first byte to the head's end (nginx's
    # client_header_timeout), and connections of a process, kept `fd_reserve` descriptors
    # under RLIMIT_NOFILE (raised to its hard limit at start-up).
    max_header_bytes: int = 128 * 1024
    max_header_count: int = 100
    header_timeout_seconds: float = 60.0
    max_connections: int = 4096
    fd_reserve: int = 128
    # Forward-proxy mode (frontier-squid's RESTRICT_DEST): host or host:port patterns of the
    # destinations absolute-form requests may name; empty: forward mode off.
    forward_destinations: tuple[str, ...] = ()
    # Who may use the cache (frontier-squid's NET_LOCAL); /_outpost/* is not subject to it.
    client_networks: tuple[str, ...] = DEFAULT_CLIENT_NETWORKS
    # The change feed (proxy.feed): follow the first live upstream's /v1/changes, hold what it
    # announces, relay it to children. None: on when the proxy has a parent.
    subscribe: bool | None = None
    subscribe_tags: tuple[str, ...] = ()  # globs of the tags whose payloads are held; () all
    access_log: str = "-"  # "-": standard output; a file path; "off"
    access_log_format: str = "frontier"  # squid, frontier or json (outpost.logformat)
    subscribe_globaltags: tuple[str, ...] = ()  # global tags whose mapped tags' payloads are held
    feed_buffer_entries: int = 10_000  # entries a child can resume from here (then: upstream)
    feed_buffer_bytes: int = 64 * 1024 * 1024
    feed_wait_seconds: int = 25  # how long one poll of the upstream's feed may wait

    @property
    def subscribes(self) -> bool:
        return self.subscribe if self.subscribe is not None else self.parent is not None

    def __post_init__(self) -> None:
        if not self.name:
            object.__setattr__(self, "name", f"{socket.gethostname().split('.')[0]}-{self.port}")
        if not is_plain_name(self.name):
            raise SettingsError(
                f"proxy.name={self.name!r}: expected a plain name (letters, digits, '_', '.', "
                "'-'; at most 128 characters)"
            )
        if not self.upstreams:
            raise SettingsError("proxy.upstreams: give at least one --upstream URL")
        for url in (*self.upstreams, *(u for u in (self.parent, self.advertise_url) if u)):
            if not url.startswith(("http://", "https://")):
                raise SettingsError(f"proxy: {redact_url(url)!r} is not an http:// or https:// URL")
        if not 0 < self.port < 65536:
            raise SettingsError(f"proxy.port={self.port}: expected 1..65535")
        if self.access_log_format not in LOG_FORMATS:
            raise SettingsError(
                f"proxy.access_log_format={self.access_log_format!r}: expected one of"
                f" {tuple(LOG_FORMATS)}"
            )
        if self.server not in SERVERS:
            raise SettingsError(f"proxy.server={self.server!r}: expected one of {SERVERS}")
        if self.workers > 1 and self.state_dir is None:
            raise SettingsError("proxy.workers > 1 needs proxy.state_dir (shared epoch, children)")
        for name in (
            "cache_size",
            "max_object_bytes",
            "flush_concurrency",
            "heartbeat_seconds",
            "keepalive_seconds",
            "feed_buffer_entries",
            "feed_buffer_bytes",
            "feed_wait_seconds",
            "negative_ttl_seconds",
            "max_epoch_step",
            "signature_window_seconds",
            "max_header_bytes",
            "max_header_count",
            "header_timeout_seconds",
            "max_connections",
            "fd_reserve",
        ):
            if getattr(self, name) <= 0:
                raise SettingsError(f"proxy.{name}={getattr(self, name)}: must be positive")
        if not self.dashboard_sample_seconds >= 1:
            raise SettingsError(
                f"proxy.dashboard_sample_seconds={self.dashboard_sample_seconds}: at least 1"
            )
        if self.relay_from_bytes < 0:
            raise SettingsError(
                f"proxy.relay_from_bytes={self.relay_from_bytes}: expected 0 (off) or a size"
            )
        try:
            Destinations(self.forward_destinations)
        except ValueError as exc:
            raise SettingsError(f"proxy.forward_destinations: {exc}") from None
        if not self.client_networks:
            raise SettingsError(
                "proxy.client_networks is empty: no client could use the cache (0.0.0.0/0 and "
                "::/0 admit every client)"
            )
        try:
            ClientNetworks(self.client_networks)
        except ValueError as exc:
            raise SettingsError(f"proxy.client_networks: {exc}") from None

        self._check_credentials()

    def _check_credentials(self) -> None:
        if self.redis and not self.shared_tier_key:
            raise SettingsError(
                "proxy.redis needs proxy.shared_tier_key ($OUTPOST_PROXY_SHARED_TIER_KEY): the "
                "secret that signs shared-tier entries, the same on every proxy of the site "
                "(e.g. `openssl rand -hex 32`)"
            )
        if self.shared_tier_key is not None and len(self.shared_tier_key) < 16:
            raise SettingsError("proxy.shared_tier_key: use at least 16 characters")
        if self.register_token and self.register_token == self.run_control_token:
            raise SettingsError(
                "proxy.register_token equals the run-control token: every child would hold a "
                "credential that commands the tree; give them different values"
            )
        if self.tree_signing_key:
            try:
                derived = public_key_of(self.tree_signing_key)
            except ValueError as exc:
                raise SettingsError(f"proxy.tree_signing_key: {exc}") from None
            if self.tree_public_key not in (None, derived):
                raise SettingsError("proxy.tree_public_key does not match tree_signing_key")
            object.__setattr__(self, "tree_public_key", derived)

    def secrets(self) -> list[str]:
        """Every secret value these settings hold: tokens, keys, passwords inside URLs."""
        values = [
            self.run_control_token,
            self.register_token,
            self.tree_signing_key,
            self.shared_tier_key,
        ]
        for url in (*self.upstreams, self.parent, self.advertise_url, self.redis):
            values.append(urlsplit(url).password if url else None)
        return [v for v in values if v]

    @property
    def url(self) -> str:
        """Where children and run control reach this proxy."""
        return self.advertise_url or f"http://{self.host}:{self.port}"


def with_run_control_token(
    settings: ProxySettings, environ: Mapping[str, str] | None = None
) -> ProxySettings:
    """Fill the token from OUTPOST_RUN_CONTROL_TOKEN when the settings have none."""
    environ = os.environ if environ is None else environ
    if settings.run_control_token is None and environ.get("OUTPOST_RUN_CONTROL_TOKEN"):
        return replace(settings, run_control_token=environ["OUTPOST_RUN_CONTROL_TOKEN"])
    return settings
