"""The proxy's current epoch, shared by all its worker processes.

With one process the epoch is a plain integer. With several, it lives in an 8-byte file mapped
into every worker's memory: a flush written by one worker is seen by all of them on their next
request, before the flush is acknowledged, and reading it costs one memory access.
"""

from __future__ import annotations

import mmap
import os
import struct
from pathlib import Path

from proxy.core.epochs import adopt

__all__ = ["EpochState"]

_INT = struct.Struct("<q")


class EpochState:
    def __init__(self, path: Path | None = None, initial: int = 0) -> None:
        self._value = initial
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
        """Set the epoch to `epoch` if that is newer; returns the epoch now in force."""
        current = adopt(self.value, epoch)
        if self._map is not None:
            _INT.pack_into(self._map, 0, current)
        else:
            self._value = current
        return current

    def adopt(self, seen: int | None) -> None:
        if seen is not None and seen > self.value:
            self.raise_to(seen)

    def close(self) -> None:
        if self._map is not None:
            self._map.close()
            self._map = None
