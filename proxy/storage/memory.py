"""L1: an in-process LRU bounded in bytes (cachetools), read synchronously on the hit path."""

from __future__ import annotations

from cachetools import LRUCache

from proxy.storage.base import Stored

__all__ = ["MemoryStore"]


class MemoryStore:
    def __init__(self, max_bytes: int) -> None:
        self._cache: LRUCache[str, Stored] = LRUCache(maxsize=max_bytes, getsizeof=_size)

    def peek(self, key: str) -> Stored | None:
        return self._cache.get(key)

    def store(self, key: str, value: Stored) -> bool:
        """Keep `value`; False if it alone is larger than the whole cache."""
        try:
            self._cache[key] = value
        except ValueError:  # cachetools: value too large
            self._cache.pop(key, None)
            return False
        return True

    def discard(self, key: str) -> None:
        self._cache.pop(key, None)

    def clear(self) -> None:
        self._cache.clear()

    @property
    def bytes(self) -> int:
        return int(self._cache.currsize)

    def __len__(self) -> int:
        return len(self._cache)

    async def get(self, key: str) -> Stored | None:
        return self.peek(key)

    async def put(self, key: str, value: Stored, keep_for: int) -> None:
        self.store(key, value)

    async def delete(self, key: str) -> None:
        self.discard(key)


def _size(value: Stored) -> int:
    return value.size
