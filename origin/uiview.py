"""What the conditions browser's pages show, made from read-API answers: formatted IOV keys and
sizes, a payload's hex dump, a tag's timeline with its corrections. Pure: documents in, values
and markup out (`origin.ui` reads the answers and renders the pages).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from markupsafe import Markup

from outpost.urls import INT64_MAX, RUN_MAX, PayloadInfo, Query
from outpost.web.svg import Segment, TimelineRow, timeline

__all__ = [
    "Correction",
    "Insertion",
    "TagTimeline",
    "corrections",
    "format_bytes",
    "format_key",
    "hexdump",
    "iovs_until",
    "tag_timeline",
]

LUMI_BITS: Final = 32
LUMI_MASK: Final = (1 << LUMI_BITS) - 1
LATEST_SECOND: Final = 253_402_300_799  # 9999-12-31T23:59:59Z


def iovs_until(time_type: str) -> int:
    """The `until` that covers every IOV a tag of `time_type` can hold: past the last run for
    a run tag, the largest key for the others."""
    return RUN_MAX + 1 if time_type == "run" else INT64_MAX


def format_key(key: int | None, time_type: str) -> str:
    """An IOV key as people read it: a run, `run:lumi`, or a UTC time; None is open-ended."""
    if key is None:
        return "∞"
    if time_type == "run_lumi":
        return f"{key >> LUMI_BITS}:{key & LUMI_MASK}"
    if time_type == "timestamp" and 0 <= key <= LATEST_SECOND:
        return datetime.fromtimestamp(key, UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    return str(key)


def format_bytes(size: int | None) -> str:
    if size is None:
        return "-"
    if size < 1024:
        return f"{size} B"
    value = float(size)
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        value /= 1024
        if value < 1024 or unit == "TiB":
            return f"{value:.1f} {unit}"
    raise AssertionError("unreachable")


def hexdump(data: bytes) -> str:
    """`hexdump -C`: offset, sixteen bytes in hex (two groups of eight), the printable ones."""
    lines = []
    for offset in range(0, len(data), 16):
        chunk = data[offset : offset + 16]
        left = " ".join(f"{b:02x}" for b in chunk[:8])
        right = " ".join(f"{b:02x}" for b in chunk[8:])
        text = "".join(chr(b) if 0x20 <= b < 0x7F else "." for b in chunk)
        lines.append(f"{offset:08x}  {left:<23}  {right:<23}  |{text}|")
    lines.append(f"{len(data):08x}")
    return "\n".join(lines)


# --- corrections -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Insertion:
    """One insertion of an IOV (channel, since): its payload, when and by whom."""

    time: str  # ISO 8601, as the read API writes it
    payload: str
    by: str | None


@dataclass(frozen=True)
class Correction:
    """(channel, since) inserted again: `before` was superseded by `after`."""

    channel: int
    since: int
    before: Insertion
    after: Insertion


def corrections(history: Iterable[Mapping[str, Any]]) -> list[Correction]:
    """Every re-insertion of an IOV key in a tag's history (its `iovs` entries, oldest first),
    in the order they were made."""
    entries = [e for e in history if e.get("kind") == "iovs"]
    seen: dict[tuple[int, int], tuple[int, str]] = {}  # key → (its entry, payload) last time
    again: list[tuple[tuple[int, int], tuple[int, str], tuple[int, str]]] = []
    for index, entry in enumerate(entries):
        for row in entry.get("iovs", ()):
            key, now = (row["channel"], row["since"]), (index, row["payload"])
            before = seen.get(key)
            if before is not None:
                again.append((key, before, now))
            seen[key] = now

    def insertion(at: tuple[int, str]) -> Insertion:
        entry = entries[at[0]]
        return Insertion(
            str(entry.get("insertion_time") or entry.get("time")), at[1], entry.get("by")
        )

    return [Correction(key[0], key[1], insertion(old), insertion(new)) for key, old, new in again]


def _date_tick(seconds: float) -> str:
    """A timestamp tag's axis value (Unix seconds) as a UTC date."""
    try:
        return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d")
    except (OverflowError, OSError, ValueError):
        return str(int(seconds))


# --- the timeline ------------------------------------------------------------------------------


@dataclass(frozen=True)
class TagTimeline:
    svg: Markup
    axis: str
    channels: int  # channels the IOVs have
    drawn: int  # channels drawn
    superseded: int  # superseded insertions under the drawn IOVs
    superseded_drawn: int


def _axis(time_type: str) -> tuple[str, int]:
    """The unit of the plot's axis and the shift from an IOV key to it: run_lumi keys are
    drawn over their run (the key's high 32 bits); labels carry `run:lumi`."""
    if time_type == "run_lumi":
        return "run", LUMI_BITS
    return ("Unix second", 0) if time_type == "timestamp" else ("run", 0)


def tag_timeline(
    time_type: str,
    iovs: Sequence[Mapping[str, Any]],
    found: Sequence[Correction],
    link: Callable[[Query], str],
    *,
    max_channels: int = 40,
    max_superseded: int = 1000,
) -> TagTimeline:
    """The current IOVs of a tag (`iovs` of its IOV answer), one row per channel, coloured by
    payload and linked to its page; a correcting IOV carries the correction mark, and under
    its channel a row shows what it superseded (each superseded insertion, with when and by
    whom it was inserted and replaced), the first `max_superseded` of them."""
    axis, shift = _axis(time_type)
    by_channel: dict[int, list[Mapping[str, Any]]] = {}
    for iov in iovs:
        by_channel.setdefault(int(iov["channel"]), []).append(iov)
    corrected: dict[tuple[int, int], list[Correction]] = {}
    for correction in found:
        corrected.setdefault((correction.channel, correction.since), []).append(correction)

    def key(value: int | None) -> str:
        return format_key(value, time_type)

    rows: list[TimelineRow] = []
    xs: list[int] = []
    superseded_total = superseded_drawn = 0
    for channel in sorted(by_channel)[:max_channels]:
        current: list[Segment] = []
        superseded: list[Segment] = []
        for iov in by_channel[channel]:
            since, until, payload = int(iov["since"]), iov["until"], str(iov["payload"])
            fixes = corrected.get((channel, since), [])
            label = (
                f"since {key(since)} until {key(until)} · payload {payload[:12]}… "
                f"({format_bytes(iov['size'])}) · inserted {iov['insertion_time']}"
            )
            if fixes:
                label += f" · corrects {len(fixes)} earlier insertion(s)"
            current.append(
                Segment(
                    since >> shift,
                    None if until is None else int(until) >> shift,
                    payload,
                    label,
                    link(PayloadInfo(payload)),
                    correction=bool(fixes),
                )
            )
            xs.append(since >> shift)
            if until is not None:
                xs.append(int(until) >> shift)
            superseded_total += len(fixes)
            for fix in fixes[: max(0, max_superseded - superseded_drawn)]:
                superseded_drawn += 1
                old = fix.before
                superseded.append(
                    Segment(
                        since >> shift,
                        None if until is None else int(until) >> shift,
                        old.payload,
                        f"superseded: since {key(since)} · payload {old.payload[:12]}… inserted "
                        f"{old.time} by {old.by or 'unknown'} · replaced {fix.after.time} by "
                        f"{fix.after.by or 'unknown'}",
                        link(PayloadInfo(old.payload)),
                    )
                )
        rows.append(TimelineRow(f"channel {channel}", tuple(current)))
        if superseded:
            rows.append(TimelineRow("superseded", tuple(superseded)))
    low = min(xs, default=0)
    high = max(xs, default=low + 1)
    high += max(1, (high - low) // 20)  # room for the open-ended last IOV
    ticks = _date_tick if time_type == "timestamp" else None
    svg = timeline(rows, low, high, axis=axis, label_width=110, tick_label=ticks)
    drawn = min(len(by_channel), max_channels)
    return TagTimeline(svg, axis, len(by_channel), drawn, superseded_total, superseded_drawn)
