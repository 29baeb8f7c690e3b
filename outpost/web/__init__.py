"""Server-rendered web pages: the origin's conditions browser (`origin/ui.py`, at `/ui/`) and
every proxy's cache-tree dashboard (`proxy/ui.py`, at `/_outpost/ui/`).

One Jinja2 environment (autoescaping on, undefined names an error), one layout
(`templates/base.html`: a small stylesheet, a navigation bar, the link to the page's JSON twin,
and for a live page thirty lines of script that fetch the page again and swap its `<main>`),
and plots as SVG made on the server (`outpost.web.svg`). The origin's pages are
`templates/origin/*.html`, the dashboard's `templates/proxy/*.html`. Everything a page needs is
in its HTML: no CDN, no other request, and every page reads the same without JavaScript.

    page("tag.html", title=…, twin="/v1/tags/T", nav=ORIGIN_NAV, cache_control=…, tag=…)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from starlette.responses import HTMLResponse

from outpost import __version__

__all__ = ["page", "templates"]

templates = Environment(
    loader=PackageLoader("outpost.web", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def page(
    template: str,
    *,
    title: str,
    nav: Sequence[tuple[str, str]],
    home: str,
    cache_control: str,
    twin: str | None = None,
    refresh: int | None = None,
    status: int = 200,
    **context: Any,
) -> HTMLResponse:
    """`template` rendered inside the layout; `twin` is the URL of the same content as JSON,
    `refresh` the seconds between live refreshes (None: a still page)."""
    html = templates.get_template(template).render(
        title=title,
        nav=nav,
        home=home,
        twin=twin,
        refresh=refresh,
        version=__version__,
        **context,
    )
    return HTMLResponse(html, status_code=status, headers={"cache-control": cache_control})
