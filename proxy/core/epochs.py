"""Epochs: how a flush reaches every entry without touching any.

A flush raises the proxy's epoch; an entry stored in an older epoch is revalidated before it
is served again (immutable entries, such as payloads addressed by their hash, are exempt).
Epochs are shared numbers down the tree: a flush carries the epoch it sets, and every response
carries its sender's (`Outpost-Epoch`), so a child that missed a flush adopts the newer epoch
the next time it hears from its parent.

Every epoch that comes from outside (a flush's request, an upstream's header, a heartbeat, the
shared tier) may move the epoch forward by at most `max_step`: one request can never push it
to the end of the integer range, where no later flush could raise it again.
"""

from __future__ import annotations

__all__ = [
    "DEFAULT_MAX_STEP",
    "EPOCH_CEILING",
    "EPOCH_HEADER",
    "EpochOutOfRange",
    "adopt",
    "next_epoch",
    "parse_epoch",
]

EPOCH_HEADER = b"outpost-epoch"
DEFAULT_MAX_STEP = 1_000_000
EPOCH_CEILING = 2**53  # exact in every JSON reader; stored as int64 by `proxy.epoch`


class EpochOutOfRange(ValueError):
    """A requested epoch beyond what one flush may set; the message says the bound."""


def next_epoch(current: int, requested: int | None = None, max_step: int = DEFAULT_MAX_STEP) -> int:
    """The epoch a flush sets: past the current one, and at least the one it was asked for,
    but no further than `current + max_step`."""
    bound = min(current + max_step, EPOCH_CEILING)
    wanted = max(current + 1, requested or 0)
    if wanted > bound:
        raise EpochOutOfRange(
            f"epoch {wanted} is out of range: at most {bound} (current {current} + {max_step})"
        )
    return wanted


def adopt(current: int, seen: int | None, max_step: int = DEFAULT_MAX_STEP) -> int:
    """The epoch after hearing `seen` from upstream: epochs only move forward, and never by
    more than `max_step` at once (a larger jump is ignored)."""
    if seen is None or seen <= current or seen > min(current + max_step, EPOCH_CEILING):
        return current
    return seen


def parse_epoch(value: bytes | None) -> int | None:
    if value is None:
        return None
    value = value.strip()
    return int(value) if value.isdigit() and len(value) < 19 else None
