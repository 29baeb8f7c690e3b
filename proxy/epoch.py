"""The proxy's current epoch, shared by all its worker processes.

With one process the epoch is a plain integer. With several, it lives in an 8-byte file mapped
into every worker's memory: a flush written by one worker is seen by all of them on their next
request, before the flush is acknowledged, and reading it costs one memory access.
"""

from __future__ import annotations

import contextlib
import fcntl
import mmap
import os
import struct
from collections.abc import Iterator
from pathlib import Path

from proxy.core.epochs import DEFAULT_MAX_STEP, adopt

__all__ = ["EpochState"]

_INT = struct.Struct("<q")


class EpochState:
    def __init__(
        self, path: Path | None = None, initial: int = 0, max_step: int = DEFAULT_MAX_STEP
    ) -> None:
        self._value = initial
        self.max_step = max_step  # the most one raise may add (`proxy.core.epochs.adopt`)
        self._path = path
        self._map: mmap.mmap | None = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                if os.fstat(fd).st_size < _INT.size:
                    os.write(fd, _INT.pack(initial))
                self._map = mmap.mmap(fd, _INT.size)
            finally:
                os.close(fd)

    @property
    def value(self) -> int:
        if self._map is not None:
            return int(_INT.unpack_from(self._map, 0)[0])
        return self._value

    def raise_to(self, epoch: int) -> int:
        """Set the epoch to `epoch` if that is newer; returns the epoch now in force.

        Across workers the read-compare-write holds an exclusive lock on the file, so two
        workers raising at once can never move the epoch backwards.
        """
        if self._map is None:
            self._value = adopt(self._value, epoch, self.max_step)
            return self._value
        with self._locked():
            current = adopt(self.value, epoch, self.max_step)
            _INT.pack_into(self._map, 0, current)
            return current

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        assert self._path is not None
        with open(self._path, "rb") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def adopt(self, seen: int | None) -> None:
        if seen is not None and seen > self.value:
            self.raise_to(seen)

    def close(self) -> None:
        if self._map is not None:
            self._map.close()
            self._map = None
