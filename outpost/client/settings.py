"""The client's settings: where to send GETs, and how long and how hard to try.

Endpoints come from the constructor or from `OUTPOST_PROXIES` and `OUTPOST_SERVERS` (see
`outpost.client.endpoints` for the `a|b,c` syntax). The tuning below has defaults fit for a farm
node, overridden by a `[client]` table in the TOML file named by `OUTPOST_CLIENT_CONFIG` and by
`OUTPOST_CLIENT_<FIELD>` variables (`OUTPOST_CLIENT_TIMEOUT=5`). A bad value raises `ConfigError`
naming the key.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields

from outpost.client.errors import ConfigError
from outpost.config import SettingsError, load_settings

__all__ = ["ClientSettings"]


@dataclass(frozen=True, slots=True)
class ClientSettings:
    timeout: float = 10.0  # seconds to wait for the next byte of an answer
    connect_timeout: float = 3.0  # seconds to wait for a connection
    rounds: int = 2  # walks over the whole endpoint list before giving up
    backoff: float = 0.5  # seconds before the second walk; doubles per walk, jittered
    backoff_cap: float = 8.0  # longest back-off
    cooldown: float = 30.0  # seconds a failed endpoint is skipped unless nothing else is left
    concurrency: int = 8  # payloads `fetch_run` fetches at once

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            low = 1 if item.name in ("rounds", "concurrency") else 0
            positive = item.name in ("timeout", "connect_timeout")
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ConfigError(f"client.{item.name}={value!r}: expected a number")
            if value < low or (positive and value <= 0):
                raise ConfigError(
                    f"client.{item.name}={value!r}: expected a number "
                    + ("above 0" if positive else f"of at least {low}")
                )

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> ClientSettings:
        try:
            return load_settings(cls, "client", environ=os.environ if environ is None else environ)
        except SettingsError as exc:
            raise ConfigError(str(exc)) from None
