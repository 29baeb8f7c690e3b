"""Epochs: how a flush reaches every entry without touching any.

A flush raises the proxy's epoch; an entry stored in an older epoch is revalidated before it
is served again (immutable entries, such as payloads addressed by their hash, are exempt).
Epochs are shared numbers down the tree: a flush carries the epoch it sets, and every response
carries its sender's (`Outpost-Epoch`), so a child that missed a flush adopts the newer epoch
the next time it hears from its parent.
"""

from __future__ import annotations

__all__ = ["EPOCH_HEADER", "adopt", "next_epoch", "parse_epoch"]

EPOCH_HEADER = b"outpost-epoch"


def next_epoch(current: int, requested: int | None = None) -> int:
    """The epoch a flush sets: past the current one, and at least the one it was asked for."""
    return max(current + 1, requested or 0)


def adopt(current: int, seen: int | None) -> int:
    """The epoch after hearing `seen` from upstream: epochs only move forward."""
    return current if seen is None or seen <= current else seen


def parse_epoch(value: bytes | None) -> int | None:
    if value is None:
        return None
    value = value.strip()
    return int(value) if value.isdigit() and len(value) < 19 else None
