"""What every command shows the same way: a failure, an absent value, an IOV key."""

from __future__ import annotations

from typing import Any

from outpost.urls import format_time

__all__ = ["DASH", "CommandFailed", "dash", "iov_key"]

DASH = "\u2013"  # an en dash: an absent value in a table, not Python's None


class CommandFailed(Exception):
    """A command that could not do its work; `outpost.cli` shows `message` as one line (JSON
    with `--json`) and exits with `code`."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def dash(value: Any) -> str:
    """`value` as text; `DASH` for None."""
    return DASH if value is None else str(value)


def iov_key(value: int | None, time_type: str) -> str:
    """An IOV boundary as people write it: `run:lumi` for run_lumi tags, an ISO time for
    timestamp tags (Unix seconds), the run number for run tags; `DASH` for an open end."""
    if value is None:
        return DASH
    if time_type == "run_lumi":
        return f"{value >> 32}:{value & 0xFFFFFFFF}"
    if time_type == "timestamp":
        try:
            return format_time(value * 1_000_000)
        except (OverflowError, OSError, ValueError):  # beyond what a date can say
            return str(value)
    return str(value)
