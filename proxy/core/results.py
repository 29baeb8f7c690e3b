"""How an answer came about, named once: its Cache-Status (RFC 9211) and its metric label.

The engine records what it did as a `Fwd` (why it went upstream, or that it did not) and the
facts of the fetch; `classify` turns those into both the Cache-Status entry this proxy appends
and the `result` label of `outpost_proxy_requests_total`, so the header a client sees and the
count an operator graphs can never disagree.

    what happened                            label        Cache-Status
    fresh in the cache                       hit          hit; ttl=…
    stale, served while revalidated behind   stale        hit; ttl=…; detail=stale-while-reva…
    stale within the client's max-stale      hit          hit; ttl=-…
    upstreams failed, stored entry served    stale        fwd=stale; detail=stale-if-error
    upstream answered, but said it was stale stale        fwd=…; fwd-status=…
    fetched on a miss                        miss         fwd=miss; fwd-status=…[; stored]
    another request's fetch answered it      collapsed    fwd=…; …; collapsed
    revalidated (epoch, request, stale, …)   revalidated  fwd=stale; fwd-status=…; detail=…
    no entry and every upstream failed       error        fwd=miss (or stale); detail=…
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from proxy.core.policy import Lookup, Verdict
from proxy.core.status import cache_status

__all__ = ["Fwd", "Served", "classify", "fwd_of"]


class Fwd(StrEnum):
    """Why the cache went upstream (RFC 9211 `fwd`, with the detail Outpost adds), or not."""

    HIT = "hit"  # it did not: fresh in the cache
    SERVED_STALE = "stale-while-revalidate"  # it did not wait: stale served, revalidated behind
    MISS = "miss"  # nothing stored
    EPOCH = "epoch"  # stored before the last flush
    REQUEST = "request"  # the client asked for validation
    STALE = "stale"  # stored, and stale
    NO_CACHE = "no-cache"  # stored, and the response demands validation
    BYPASS = "bypass"  # not the cache's to answer: the client's own request, forwarded


_REVALIDATIONS = frozenset({Fwd.EPOCH, Fwd.REQUEST, Fwd.STALE, Fwd.NO_CACHE})


def fwd_of(decision: Lookup) -> Fwd:
    """The `Fwd` of a lookup verdict that does not pass the request on."""
    match decision.verdict:
        case Verdict.HIT:  # fresh, or stale within the client's max-stale
            return Fwd.HIT
        case Verdict.STALE:
            return Fwd.SERVED_STALE
        case Verdict.MISS | Verdict.UNAVAILABLE:
            return Fwd.MISS
        case Verdict.REVALIDATE:
            return Fwd(decision.detail)
        case Verdict.PASS:
            return Fwd.BYPASS
    raise AssertionError(decision)


@dataclass(frozen=True, slots=True)
class Served:
    """The facts about one answer that its Cache-Status and metric label depend on."""

    fwd: Fwd
    cached: bool = False  # served from what was stored, without waiting for a fetch
    entry: bool = False  # served from a stored (or just stored) entry
    failed: bool = False  # every upstream failed
    warned: bool = False  # the upstream's answer carried a staleness Warning
    collapsed: bool = False  # another request's fetch answered it (RFC 9211 `collapsed`)
    stored: bool = False
    fwd_status: int | None = None
    ttl: int | None = None  # seconds of freshness left, for answers served from the cache


def classify(name: str, served: Served) -> tuple[str, bytes]:
    """The metric label and this cache's Cache-Status entry for an answer."""
    if served.cached and served.entry:
        if served.fwd is Fwd.HIT:
            return "hit", cache_status(name, hit=True, ttl=served.ttl)
        return "stale", cache_status(name, hit=True, ttl=served.ttl, detail=served.fwd)
    if served.failed and served.entry:
        return "stale", cache_status(name, fwd="stale", detail="stale-if-error")
    revalidation = served.fwd in _REVALIDATIONS
    status = cache_status(
        name,
        fwd="stale" if revalidation else "miss",
        fwd_status=served.fwd_status,
        stored=served.stored,
        collapsed=served.collapsed,
        detail=served.fwd if revalidation else None,
    )
    if not served.entry:
        return ("error" if served.failed else "miss"), status
    if served.warned:
        return "stale", status
    if served.collapsed:
        return "collapsed", status
    return ("revalidated" if revalidation else "miss"), status
