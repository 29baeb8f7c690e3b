"""Frontier servlet URLs, as frontier_client 2.x sends them:

    /{servlet}/Frontier/type=frontier_request:1:DEFAULT&encoding=BLOBzip&p1=eNpz…   path form
    /{servlet}/Frontier?type=frontier_request:1:DEFAULT&encoding=BLOBzip&p1=eNpz…   query form

`servlet` is any one path segment (`FrontierProd`, `outpost`, …). The client makes the URL a pure
function of the query (the SQL is zlib-compressed and base64url-encoded into `p1`), so the proxy
keys these, as every URL that is not one of Outpost's reads, on the exact path and query bytes as
received (`proxy.core.keys`): nothing is re-ordered, decoded or re-encoded, and the same bytes go
upstream.

Frontier refreshes: `Cache-Control: max-age=0` is the soft refresh (revalidate: a conditional
request upstream, the stored body served on 304); `Pragma: no-cache` is the hard refresh (fetch
the whole answer again). frontier_client sends `Cache-Control: max-stale=1` on every request, so
its `Pragma: no-cache` always comes with a Cache-Control field; squid honours it anyway, and so
does the proxy for Frontier URLs (RFC 9111 §5.4 would have Pragma ignored there).
"""

from __future__ import annotations

import re

__all__ = ["is_frontier_path"]

_FRONTIER = re.compile(r"/[^/?]+/Frontier(?:[/?]|\Z)")  # also matches a key (path?query)


def is_frontier_path(raw_path: str) -> bool:
    """Whether a request path (or a cache key: path and query) is a Frontier servlet URL."""
    return _FRONTIER.match(raw_path) is not None
