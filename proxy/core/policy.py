"""Cache policy as named verdicts, separate from storage (like Varnish's builtin.vcl).

    lookup:   PASS      not ours to cache: forward as is (unsafe method, request no-store)
              MISS      nothing stored: fetch, maybe store
              HIT       fresh (or stale within the client's max-stale): serve it
              REVALIDATE stored but must be checked: conditional request upstream
              STALE     stale within stale-while-revalidate: serve it, revalidate behind
              UNAVAILABLE  only-if-cached, and only a fetch would answer: 504
    upstream failed:
              SERVE_STALE  stale-if-error (the response's or the operator's window) allows it
              FAIL         answer the client with the error

The `detail` of a verdict says why (for Cache-Status): `epoch` (a flush since it was stored),
`request` (the client asked for validation), `stale`, `no-cache` (the response requires it).

`fresh_hit` is `lookup`'s HIT verdict for a request whose directives cannot turn an entry away
(`plain_request`), in one expression: the hit path (`proxy.hits`) answers most requests with
it alone. `tests/core/test_proxy_fresh_hit.py` checks with hypothesis that the two agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from proxy.core.directives import CacheControl
from proxy.core.entry import HEURISTIC_STATUSES, Entry
from proxy.core.headers import Headers, get_all

__all__ = [
    "ErrorVerdict",
    "Lookup",
    "Verdict",
    "after_error",
    "fresh_hit",
    "is_storable",
    "lookup",
    "plain_request",
]

SECOND = 1_000_000
SAFE_METHODS = frozenset({"GET", "HEAD"})


class Verdict(StrEnum):
    PASS = "pass"
    MISS = "miss"
    HIT = "hit"
    REVALIDATE = "revalidate"
    STALE = "stale"
    UNAVAILABLE = "unavailable"  # only-if-cached, and nothing stored answers it (§5.2.1.7)


class ErrorVerdict(StrEnum):
    SERVE_STALE = "serve-stale"
    FAIL = "fail"


@dataclass(frozen=True, slots=True)
class Lookup:
    verdict: Verdict
    detail: str = ""


def plain_request(request: CacheControl) -> bool:
    """Whether a request's directives leave a fresh entry servable as it is: none, or only
    `max-stale` (frontier_client's `max-stale=1` on every request), `only-if-cached` and
    extensions."""
    return request == CacheControl(
        max_stale=request.max_stale, only_if_cached=request.only_if_cached
    )


def fresh_hit(entry: Entry, now: int, epoch: int) -> bool:
    """Whether `entry` answers a plain request as it is: stored since the last flush (a flush
    spares immutable entries), no validation demanded, and fresh."""
    return (
        (entry.epoch >= epoch or entry.immutable)
        and not entry.no_cache
        and entry.age(now) < entry.freshness
    )


def lookup(method: str, request: CacheControl, entry: Entry | None, now: int, epoch: int) -> Lookup:
    """What to do with a request, given what is stored for its key. A request that said
    `only-if-cached` is never sent on: where it would be, it is UNAVAILABLE (a 504)."""
    decision = _lookup(method, request, entry, now, epoch)
    if request.only_if_cached and decision.verdict in (Verdict.MISS, Verdict.REVALIDATE):
        return Lookup(Verdict.UNAVAILABLE, "only-if-cached")
    return decision


def _lookup(
    method: str, request: CacheControl, entry: Entry | None, now: int, epoch: int
) -> Lookup:
    if method not in SAFE_METHODS:
        return Lookup(Verdict.PASS, "method")
    if request.no_store:
        return Lookup(Verdict.PASS, "request")
    if entry is None:
        return Lookup(Verdict.MISS)
    if entry.epoch < epoch and not entry.immutable:
        return Lookup(Verdict.REVALIDATE, "epoch")
    if request.no_cache or request.max_age == 0:
        return Lookup(Verdict.REVALIDATE, "request")
    if entry.no_cache:
        return Lookup(Verdict.REVALIDATE, "no-cache")
    age = entry.age(now)
    if request.max_age is not None and age > request.max_age * SECOND:
        return Lookup(Verdict.REVALIDATE, "request")
    if age < entry.freshness:
        if request.min_fresh is not None and age + request.min_fresh * SECOND >= entry.freshness:
            return Lookup(Verdict.REVALIDATE, "request")  # fresh, but not for long enough
        return Lookup(Verdict.HIT)
    staleness = age - entry.freshness
    if entry.must_revalidate:
        return Lookup(Verdict.REVALIDATE, "stale")
    if request.max_stale is not None and staleness <= request.max_stale * SECOND:
        return Lookup(Verdict.HIT, "stale")
    if staleness < entry.stale_while_revalidate:
        return Lookup(Verdict.STALE, "stale")
    return Lookup(Verdict.REVALIDATE, "stale")


def after_error(entry: Entry | None, now: int, operator_window: int) -> ErrorVerdict:
    """Every upstream failed: may the stored entry be served stale?

    Allowed within the response's own stale-if-error or the operator's window (µs), but never
    for responses that demand validation (must-revalidate, proxy-revalidate, s-maxage,
    no-cache: RFC 9111 §4.2.4).
    """
    if entry is None or entry.must_revalidate or entry.no_cache:
        return ErrorVerdict.FAIL
    staleness = max(0, entry.age(now) - entry.freshness)
    window = max(entry.stale_if_error, operator_window)
    return ErrorVerdict.SERVE_STALE if staleness <= window else ErrorVerdict.FAIL


def is_storable(
    method: str,
    status: int,
    request: CacheControl,
    response: CacheControl,
    response_headers: Headers,
    *,
    authorized: bool,
    partial: bool = False,
) -> bool:
    """RFC 9111 §3 for a shared cache; and never an answer that sets a cookie (Varnish's
    builtin policy): a cookie is one client's state, not something to hand to every client.

    Any final status may be stored when the answer gives it explicit freshness (`max-age`,
    `s-maxage`, `Expires`, `public`); without it, only the heuristically cacheable statuses
    (RFC 9110 §15.1), and only when a validator makes the stale entry cheap to revalidate.
    Partial (206) and 304 answers are not stored as entries (a 304 refreshes one); with
    `partial`, the same rules decide whether a 206 may be kept as a part (§3.3)."""
    if method != "GET" or status < 200 or status == 304 or (status == 206) != partial:
        return False
    if any(k == b"set-cookie" for k, _ in response_headers):
        return False
    if request.no_store or response.no_store or response.private:
        return False
    varied = (name.strip() for v in get_all(response_headers, b"vary") for name in v.split(b","))
    if b"*" in varied:  # `*` may stand anywhere in the list (RFC 9110 §12.5.5)
        return False
    shareable = response.public or response.s_maxage is not None or response.must_revalidate
    if authorized and not shareable:  # §3.5
        return False
    explicit = (
        response.max_age is not None
        or response.s_maxage is not None
        or response.public
        or any(k == b"expires" for k, _ in response_headers)
    )
    if explicit:
        return True
    # Without explicit freshness, storing pays only if the entry can be revalidated cheaply.
    validators = any(k in (b"etag", b"last-modified") for k, _ in response_headers)
    return status in HEURISTIC_STATUSES and validators
