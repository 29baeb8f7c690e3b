"""L2: Redis, shared by every proxy of a site. Entries expire on the logical TTL the policy
chose (`keep_for`); an unreachable Redis raises `StoreUnavailable`, which the tiered store turns
into "L1 only" until Redis answers again.

Entries are sealed (`codec.seal`) with the site's shared-tier key; one that fails the check
(forged or altered by whoever else can write to Redis) is dropped, counted through `on_rejected`
and read as a miss."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from outpost.redact import redact_text, redact_url
from proxy.storage.base import Stored
from proxy.storage.codec import decode, encode, seal, unseal

__all__ = ["RedisStore", "StoreUnavailable"]

log = logging.getLogger("outpost.proxy.storage")

PREFIX = "outpost:v1:"
EPOCH_KEY = "outpost:epoch"
# Entries in the shared tier carry the epoch they were stored in; the site's epoch is kept
# beside them, so a proxy that restarts (epoch 0) cannot take pre-flush entries for current.
_RAISE = """
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) > current then redis.call('SET', KEYS[1], ARGV[1]) end
return 0
"""


class StoreUnavailable(Exception):
    """The shared store did not answer; the message says why."""


class RedisStore:
    def __init__(
        self,
        url: str,
        *,
        key: bytes,
        timeout: float = 0.5,
        on_rejected: Callable[[], None] = lambda: None,
    ) -> None:
        self.url = redact_url(url)  # what status shows
        self._key = key
        self._on_rejected = on_rejected
        self._redis = aioredis.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            health_check_interval=30,
        )

    async def get(self, key: str) -> Stored | None:
        try:
            data = await self._redis.get(PREFIX + key)
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(redact_text(f"redis get: {exc}")) from exc
        if data is None:
            return None
        raw = data if isinstance(data, bytes) else data.encode("latin-1")
        opened = unseal(self._key, key, raw)
        if opened is None:
            log.warning("dropped a shared-tier entry that failed its signature check: %s", key)
            self._on_rejected()
            return None
        return decode(opened)

    async def put(self, key: str, value: Stored, keep_for: int) -> None:
        try:
            await self._redis.set(
                PREFIX + key, seal(self._key, key, encode(value)), ex=max(1, keep_for)
            )
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(redact_text(f"redis set: {exc}")) from exc

    async def delete(self, key: str) -> None:
        try:
            await self._redis.delete(PREFIX + key)
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(redact_text(f"redis delete: {exc}")) from exc

    async def epoch(self) -> int | None:
        """The newest flush epoch any proxy of the site recorded, or None if unknown."""
        try:
            value = await self._redis.get(EPOCH_KEY)
            return None if value is None else int(value)
        except (RedisError, OSError, ValueError):
            return None

    async def raise_epoch(self, epoch: int) -> None:
        """Record `epoch` unless a newer one is there (atomically, in Redis)."""
        with contextlib.suppress(RedisError, OSError):  # then the fan-out alone carries it
            await self._redis.eval(_RAISE, 1, EPOCH_KEY, epoch)

    async def ping(self) -> bool:
        try:
            return bool(await self._redis.ping())
        except (RedisError, OSError):
            return False

    async def close(self) -> None:
        await self._redis.aclose()
