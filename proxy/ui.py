"""The cache-tree dashboard every proxy serves for its subtree: `GET /_outpost/ui/` (HTML, live:
the page fetches itself again every 2 s) and `GET /_outpost/dashboard`, the same content as
JSON. Neither needs a token, both are `no-store`, and neither shows a credential: its content
comes from `proxy.dashboard`, which redacts every URL.

The children's table lists `PAGE_SIZE` children a page, each with its two plots (`?page=N`);
above it, how many children are ok, late or expiring, and the names of those that are not ok.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson
from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import Response

from outpost.errors import BadRequest
from outpost.web import page as render
from outpost.web.svg import sparkline

if TYPE_CHECKING:
    from proxy.app import ProxyApp

__all__ = ["NAV", "ui_handlers"]

NAV = (
    ("/_outpost/ui/", "Dashboard"),
    ("/_outpost/status", "Status"),
    ("/_outpost/metrics", "Metrics"),
)
REFRESH_SECONDS = 2
MAX_PAGE = 1_000_000

Handler = Callable[[Request], Awaitable[Response]]


def ui_handlers(app: ProxyApp) -> tuple[Handler, Handler]:
    """The page and its JSON twin, which `proxy.admin` routes."""

    async def ui(request: Request) -> Response:
        number = _page_number(request)
        document = app.dashboard.document(number)
        twin = "/_outpost/dashboard" + (f"?page={number}" if number > 1 else "")
        # Plots and markup off the event loop (a page of 100 children is ~10 ms of CPU): hits
        # keep being answered while an operator watches.
        return await asyncio.to_thread(_render, app.name, document, twin)

    async def dashboard(request: Request) -> Response:
        document = app.dashboard.document(_page_number(request))
        return Response(
            orjson.dumps(document),
            media_type="application/json",
            headers={"cache-control": "no-store"},
        )

    return ui, dashboard


def _render(name: str, document: dict[str, Any], twin: str) -> Response:
    return render(
        "proxy/dashboard.html",
        title=f"{name} · cache tree",
        nav=NAV,
        home="/_outpost/ui/",
        cache_control="no-store",
        twin=twin,
        refresh=REFRESH_SECONDS,
        d=document,
        plots=_plots(document),
        age=_age,
        when=_when,
        size=_size,
        number=_number,
    )


def _page_number(request: Request) -> int:
    text = request.query_params.get("page", "1")
    if not (text.isascii() and text.isdigit() and len(text) <= 7) or not 1 <= int(text) <= MAX_PAGE:
        raise BadRequest("page must be a page number", accepted="?page=2")
    return int(text)


def _plots(document: dict[str, Any]) -> dict[str, Any]:
    """The sparklines: this proxy's two, and two for each child listed (by name)."""
    own = document["series"]
    window = _age(own["step_seconds"] * len(own["request_rate"]))
    children: dict[str, tuple[Markup, Markup]] = {}
    for row in document["children"]["rows"]:
        if row["series"] is not None:
            children[row["name"]] = (
                _ratio_plot(row["series"], f"{row['name']}: hit ratio (%)", 160, 28),
                _rate_plot(row["series"], f"{row['name']}: answers a second", 160, 28),
            )
    return {
        "hit_ratio": _ratio_plot(own, f"hit ratio (%), last {window}", 320, 48),
        "request_rate": _rate_plot(own, f"answers a second, last {window}", 320, 48),
        "window": window,
        "children": children,
    }


def _ratio_plot(plotted: dict[str, Any], label: str, width: int, height: int) -> Markup:
    percent = [None if v is None else 100 * v for v in plotted["hit_ratio"]]
    return sparkline(percent, top=100.0, label=label, width=width, height=height)


def _rate_plot(plotted: dict[str, Any], label: str, width: int, height: int) -> Markup:
    return sparkline(plotted["request_rate"], label=label, width=width, height=height)


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    seconds = max(0.0, seconds)
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def _when(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _size(count: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if count < 1024 or unit == "GiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} GiB"  # not reached


def _number(value: float | None, digits: int = 1) -> str:
    return "\u2013" if value is None else f"{value:.{digits}f}"
