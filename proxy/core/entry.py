"""A stored response and what the policy needs to know about it, derived once at store time.

Times are microseconds since the epoch. `initial_age` is the corrected initial age of RFC 9111
§4.2.3; the age at `now` is `initial_age + (now - response_time)`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from email.utils import formatdate

from proxy.core.age import parse_age
from proxy.core.dates import parse_http_date
from proxy.core.directives import CacheControl, parse_cache_control
from proxy.core.headers import Headers, get_all, get_first
from proxy.core.targeted import OUTPOST_CACHE_CONTROL, targeted_cache_control

__all__ = [
    "Entry",
    "Serving",
    "freshness_lifetime",
    "http_date",
    "initial_age",
    "make_entry",
    "parse_http_date",
    "response_cache_control",
]

SECOND = 1_000_000
HEURISTIC_STATUSES = frozenset({200, 203, 204, 206, 300, 301, 308, 404, 405, 410, 414, 501})
HEURISTIC_FRACTION = 0.1  # of the time since Last-Modified (RFC 9111 §4.2.2)
HEURISTIC_CAP = 86_400 * SECOND
# Recomputed on every use (Age), or true only of the response that carried it (Warning).
_NOT_STORED = frozenset({b"age", b"warning"})
_NOT_UPDATED = frozenset({b"content-length", b"content-encoding", b"set-cookie"})


@dataclass(frozen=True, slots=True)
class Serving:
    """What a proxy sends for an entry, prepared once (see `proxy.core.serving.prepare`)."""

    prefix: tuple[tuple[bytes, bytes], ...]  # stored headers + Via + Content-Length
    upstream_status: bytes | None  # the Cache-Status chain the entry arrived with
    hit_status: bytes  # "<chain>, NAME; hit; ttl=": the ttl is appended per hit
    # The last hit's headers, keyed by (age in seconds, epoch): hits within the same second
    # send the same headers, so they are built once a second, not once a request. The fourth
    # slot holds the same headers as an HTTP/1.1 response head, once asked for.
    memo: list[object] = field(default_factory=lambda: [None, None, None, None])


@dataclass(frozen=True, slots=True)
class Entry:
    status: int
    headers: tuple[tuple[bytes, bytes], ...]  # end-to-end, lower-case names, no Age or Warning
    body: bytes
    request_time: int
    response_time: int
    epoch: int
    freshness: int  # freshness lifetime, µs
    initial_age: int  # µs
    etag: bytes | None
    last_modified: bytes | None
    vary: tuple[bytes, ...]
    immutable: bool
    no_cache: bool  # stored, but every use must be revalidated
    must_revalidate: bool
    stale_while_revalidate: int  # µs
    stale_if_error: int  # µs, from the response's own directive
    targeted: bool = False  # carries Outpost-Cache-Control: sent on to Outpost tiers only
    serving: Serving | None = None  # set when the proxy keeps it in memory

    @property
    def size(self) -> int:
        return len(self.body) + sum(len(k) + len(v) for k, v in self.headers) + 256

    def age(self, now: int) -> int:
        return self.initial_age + max(0, now - self.response_time)

    def is_fresh(self, now: int) -> bool:
        return self.age(now) < self.freshness

    def ttl(self, now: int) -> int:
        """Remaining freshness in whole seconds (negative when stale)."""
        return (self.freshness - self.age(now)) // SECOND

    def refreshed(
        self, headers: Headers, request_time: int, response_time: int, epoch: int
    ) -> Entry:
        """The entry after a 304: new header values win (RFC 9111 §4.3.4), body kept, except
        the fields the stored body depends on (RFC 9111 §3.2: Content-Length; Content-Encoding,
        which the stored bytes were checked under) and Set-Cookie, which is never stored."""
        headers = [(k, v) for k, v in headers if k not in _NOT_UPDATED]
        headers = _dated(headers, response_time)
        updated = {key for key, _ in headers}
        merged = [(k, v) for k, v in self.headers if k not in updated] + list(headers)
        fresh = make_entry(self.status, merged, self.body, request_time, response_time, epoch)
        return replace(fresh, body=self.body)


def http_date(micros: int) -> bytes:
    return formatdate(micros // SECOND, usegmt=True).encode()


def freshness_lifetime(
    status: int, cc: CacheControl, headers: Headers, *, targeted: bool = False
) -> int:
    """RFC 9111 §4.2.1 for a shared cache: s-maxage, max-age, Expires - Date, or heuristic.
    Directives from a targeted field (`targeted`) replace Expires too (RFC 9213 §2.2)."""
    if cc.s_maxage is not None:
        return cc.s_maxage * SECOND
    if cc.max_age is not None:
        return cc.max_age * SECOND
    expires = [] if targeted else get_all(headers, b"expires")
    if expires:
        date = parse_http_date(get_first(headers, b"date"))
        expiry = parse_http_date(expires[0]) if len(expires) == 1 else None
        if date is None or expiry is None:
            return 0  # an invalid Expires (or several) means already expired (§5.3)
        return max(0, expiry - date)
    last_modified = parse_http_date(get_first(headers, b"last-modified"))
    date = parse_http_date(get_first(headers, b"date"))
    heuristic = status in HEURISTIC_STATUSES or cc.public
    if heuristic and last_modified is not None and date is not None:
        return min(HEURISTIC_CAP, int(max(0, date - last_modified) * HEURISTIC_FRACTION))
    return 0


def response_cache_control(headers: Headers) -> CacheControl:
    """The directives this cache obeys for a response: its targeted field (RFC 9213:
    Outpost-Cache-Control, then CDN-Cache-Control), which then replaces Cache-Control and
    Expires; otherwise Cache-Control."""
    targeted = targeted_cache_control(headers)
    if targeted is not None:
        return targeted
    return parse_cache_control(*get_all(headers, b"cache-control"))


def initial_age(headers: Headers, request_time: int, response_time: int) -> int:
    """Corrected initial age, RFC 9111 §4.2.3; an invalid Age is ignored (§5.1)."""
    age_value = (parse_age(get_all(headers, b"age")) or 0) * SECOND
    date = parse_http_date(get_first(headers, b"date"))
    apparent = max(0, response_time - date) if date is not None else 0
    corrected = age_value + max(0, response_time - request_time)
    return max(apparent, corrected)


def _dated(headers: Headers, response_time: int) -> list[tuple[bytes, bytes]]:
    """A message without Date gets the time it arrived (RFC 9110 §6.6.1)."""
    if get_first(headers, b"date") is not None:
        return list(headers)
    return [*headers, (b"date", http_date(response_time))]


def make_entry(
    status: int,
    headers: Headers,
    body: bytes,
    request_time: int,
    response_time: int,
    epoch: int,
) -> Entry:
    headers = _dated(headers, response_time)
    targeted = targeted_cache_control(headers)
    cc = targeted or parse_cache_control(*get_all(headers, b"cache-control"))
    # A shared cache must not store the fields `private="…"` names (RFC 9111 §5.2.2.7), nor
    # send those `no-cache="…"` names without revalidation (§5.2.2.4): both are left out.
    omitted = _NOT_STORED.union(cc.private_fields, cc.no_cache_fields)
    named = (token.strip().lower() for v in get_all(headers, b"vary") for token in v.split(b","))
    vary = tuple(sorted({name for name in named if name}))
    return Entry(
        status=status,
        headers=tuple((k, v) for k, v in headers if k not in omitted),
        body=body,
        request_time=request_time,
        response_time=response_time,
        epoch=epoch,
        freshness=freshness_lifetime(status, cc, headers, targeted=targeted is not None),
        initial_age=initial_age(headers, request_time, response_time),
        etag=get_first(headers, b"etag"),
        last_modified=get_first(headers, b"last-modified"),
        vary=vary,
        immutable=cc.immutable,
        no_cache=cc.no_cache,
        must_revalidate=cc.must_revalidate or cc.proxy_revalidate or cc.s_maxage is not None,
        stale_while_revalidate=(cc.stale_while_revalidate or 0) * SECOND,
        stale_if_error=(cc.stale_if_error or 0) * SECOND,
        targeted=any(k == OUTPOST_CACHE_CONTROL for k, _ in headers),
    )
