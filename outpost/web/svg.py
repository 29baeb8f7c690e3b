"""Plots as SVG, made on the server: an IOV timeline and a sparkline. Pure: strings in, markup out.

Farm networks have no internet, so nothing is fetched from a CDN: a page's plots are part of its
HTML, drawn here, and readable without JavaScript. Every text that comes from data is escaped;
every number is formatted by this module, so no value can break out of an attribute.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape
from typing import Final

from markupsafe import Markup

__all__ = ["Segment", "TimelineRow", "colour", "nice_ticks", "sparkline", "timeline"]

FONT: Final = "font-family:system-ui,sans-serif;font-size:11px"


@dataclass(frozen=True, slots=True)
class Segment:
    """One IOV on a timeline: from `since` to `until` (None: open, drawn to the right edge)."""

    since: int
    until: int | None
    payload: str | None  # the payload hash: its colour, and the link
    label: str  # the tooltip
    href: str | None = None
    correction: bool = False  # inserted later than the first IOV at this since


@dataclass(frozen=True, slots=True)
class TimelineRow:
    name: str  # e.g. "channel 0"
    segments: tuple[Segment, ...]


def colour(payload: str | None) -> str:
    """A stable colour for a payload hash: the same payload is the same colour everywhere."""
    if payload is None:
        return "#d0d0d0"
    hue = int(hashlib.blake2b(payload.encode(), digest_size=2).hexdigest(), 16) % 360
    return f"hsl({hue},55%,62%)"


def nice_ticks(low: float, high: float, count: int = 6) -> list[float]:
    """Round values between `low` and `high` for an axis (1, 2 or 5 times a power of ten)."""
    if not math.isfinite(low) or not math.isfinite(high) or high <= low:
        return [low]
    raw = (high - low) / max(count, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.ceil(low / step) * step
    ticks, value = [], first
    while value <= high + step * 1e-9:
        ticks.append(round(value, 10))
        value += step
    return ticks


def timeline(
    rows: Sequence[TimelineRow],
    low: int,
    high: int,
    *,
    width: int = 900,
    row_height: int = 22,
    label_width: int = 90,
    axis: str = "run",
    tick_label: Callable[[float], str] | None = None,
) -> Markup:
    """IOVs as bars on a shared axis from `low` to `high`, one row per channel; corrections
    carry a dark mark at their start. `tick_label` writes an axis value (default: the number)."""
    high = max(high, low + 1)
    plot = width - label_width - 40  # room for the last tick's label
    label = tick_label or _number
    height = row_height * len(rows) + 30

    def x(value: float) -> float:
        clipped = min(max(value, low), high)
        return label_width + plot * (clipped - low) / (high - low)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="plot timeline" role="img" '
        f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" style="{FONT}">',
        f"<title>IOV timeline over {escape(axis)}s {low} to {high}</title>",
    ]
    for index, row in enumerate(rows):
        top = 4 + index * row_height
        parts.append(
            f'<text x="{label_width - 6}" y="{top + row_height * 0.65:.1f}" '
            f'text-anchor="end">{escape(row.name)}</text>'
        )
        for segment in row.segments:
            left, right = x(segment.since), x(high if segment.until is None else segment.until)
            if right < label_width or left > width:
                continue
            bar = (
                f'<rect x="{left:.1f}" y="{top + 2}" width="{max(right - left, 1.5):.1f}" '
                f'height="{row_height - 6}" fill="{colour(segment.payload)}" '
                f'stroke="#444" stroke-width="0.5"><title>{escape(segment.label)}</title></rect>'
            )
            if segment.correction:
                bar += (
                    f'<path d="M{left:.1f},{top + 2} l6,0 l-6,8 z" fill="#222" class="correction">'
                    f"<title>correction: {escape(segment.label)}</title></path>"
                )
            if segment.href:
                bar = f'<a href="{escape(segment.href, quote=True)}">{bar}</a>'
            parts.append(bar)
    base = 4 + len(rows) * row_height
    parts.append(
        f'<line x1="{label_width}" y1="{base}" x2="{label_width + plot}" y2="{base}" '
        'stroke="#444"/>'
    )
    for tick in nice_ticks(low, high):
        position = x(tick)
        parts.append(
            f'<line x1="{position:.1f}" y1="{base}" x2="{position:.1f}" y2="{base + 4}" '
            f'stroke="#444"/><text x="{position:.1f}" y="{base + 16}" '
            f'text-anchor="middle">{escape(label(tick))}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def sparkline(
    values: Sequence[float | None],
    *,
    width: int = 220,
    height: int = 40,
    top: float | None = None,
    label: str = "",
) -> Markup:
    """A small line over the last samples (None: no sample), scaled to `top` (default: their
    largest), with the latest value written at its end; samples before the first one known
    are left out."""
    first = next((i for i, v in enumerate(values) if v is not None), len(values))
    values = values[first:]  # a ring that is not full yet: the samples it has fill the width
    known = [v for v in values if v is not None and math.isfinite(v)]
    ceiling = top if top is not None else max(known, default=0.0)
    ceiling = ceiling if ceiling > 0 else 1.0
    step = (width - 50) / max(len(values) - 1, 1)
    points = []
    for index, value in enumerate(values):
        if value is None or not math.isfinite(value):
            continue
        y = height - 4 - (height - 8) * min(value, ceiling) / ceiling
        points.append(f"{index * step:.1f},{y:.1f}")
    latest = _number(known[-1]) if known else "no data"
    return Markup(
        f'<svg xmlns="http://www.w3.org/2000/svg" class="plot sparkline" role="img" '
        f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" style="{FONT}">'
        f"<title>{escape(label)}</title>"
        f'<polyline fill="none" stroke="#2a6fb0" stroke-width="1.5" points="{" ".join(points)}"/>'
        f'<text x="{width - 2}" y="{height / 2 + 4:.1f}" text-anchor="end">{escape(latest)}</text>'
        "</svg>"
    )


def _number(value: float) -> str:
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.3g}"
