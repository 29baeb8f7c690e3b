"""Payload bytes as files, named by their SHA-256 (`payload_store = "files"`).

`ROOT/ab/cd/abcd…` — two levels of fan-out by hash prefix, as git and CVMFS lay out objects, so
no directory grows past 65 536 entries' worth of prefixes. A file is written under a temporary
name in its final directory, flushed to disk, renamed into place and the directory flushed: a
reader (or a crash) sees the whole file or none. Its bytes are checked against the name before
they are written, so the store never holds a file whose content is not its name.

The database keeps each payload's metadata row; the row's `data` is empty while its `size` is
not (`in_files`): the bytes are here. A payload of size 0 is the same empty bytes either way.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import secrets
from pathlib import Path

from outpost.errors import OutpostError

__all__ = ["PayloadFileError", "PayloadFiles", "in_files"]

_HASH = re.compile(r"[0-9a-f]{64}")


class PayloadFileError(OutpostError):
    """A payload file is missing or does not hold its name's bytes."""

    status = 500
    error = "payload store"


def in_files(size: int, data: bytes | memoryview | None) -> bool:
    """Whether a payload row's bytes live in the file store."""
    return size > 0 and (data is None or len(data) == 0)


class PayloadFiles:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, digest: str) -> Path:
        if not _HASH.fullmatch(digest):
            raise ValueError(f"{digest[:80]!r} is not a lower-case SHA-256 hash")
        return self.root / digest[:2] / digest[2:4] / digest

    def has(self, digest: str) -> bool:
        return self.path(digest).is_file()

    def write(self, digest: str, data: bytes) -> bool:
        """Store `data` under `digest` (which it must hash to); False if it was there already."""
        actual = hashlib.sha256(data).hexdigest()
        if actual != digest:
            raise ValueError(f"bytes hash to {actual}, not {digest}")
        target = self.path(digest)
        if target.is_file():
            return False
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.parent / f".{digest}.{secrets.token_hex(6)}.tmp"
        try:
            with open(temporary, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temporary, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                temporary.unlink()
            raise
        _fsync_directory(target.parent)
        return True

    def read(self, digest: str) -> bytes:
        """The bytes of `digest`, checked against it."""
        path = self.path(digest)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise PayloadFileError(f"payload {digest} is missing from {self.root}") from None
        if hashlib.sha256(data).hexdigest() != digest:
            raise PayloadFileError(f"payload file {path} does not hold the bytes of its name")
        return data


def _fsync_directory(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
