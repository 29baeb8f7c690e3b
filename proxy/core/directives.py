"""Cache-Control (RFC 9111 §5.2) and its extensions: stale-while-revalidate, stale-if-error
(RFC 5861) and immutable (RFC 8246), parsed into one frozen value.

Unknown directives are ignored, as the RFC requires; a malformed delta-seconds counts as absent
for lifetimes, but `no-store`, `no-cache` and `private` hold whatever follows them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

__all__ = ["CacheControl", "parse_cache_control", "request_cache_control"]

_MAX_DELTA = 2**31  # RFC 9111 §1.2.2: treat larger delta-seconds as this


@dataclass(frozen=True, slots=True)
class CacheControl:
    max_age: int | None = None
    s_maxage: int | None = None
    no_store: bool = False
    no_cache: bool = False
    private: bool = False
    public: bool = False
    must_revalidate: bool = False
    proxy_revalidate: bool = False
    immutable: bool = False
    stale_while_revalidate: int | None = None
    stale_if_error: int | None = None
    max_stale: int | None = None  # request; `max-stale` without a value: any staleness
    min_fresh: int | None = None
    only_if_cached: bool = False


_ANY = _MAX_DELTA


def _seconds(value: str | None) -> int | None:
    if value is None:
        return None
    value = value.strip().strip('"')
    if not (value.isascii() and value.isdigit()):  # "²" is a digit to str.isdigit
        return None
    return min(int(value), _MAX_DELTA)


def parse_cache_control(*values: str | bytes | None) -> CacheControl:
    """Merge every Cache-Control field line of a message into one `CacheControl`."""
    found: dict[str, str | None] = {}
    for value in values:
        if not value:
            continue
        text = value.decode("latin-1") if isinstance(value, bytes) else value
        for item in _split(text):
            name, eq, argument = item.partition("=")
            name = name.strip().lower()
            if name and name not in found:
                found[name] = argument if eq else None
    max_stale: int | None = None
    if "max-stale" in found:
        max_stale = _ANY if found["max-stale"] is None else _seconds(found["max-stale"])
    return CacheControl(
        max_age=_seconds(found.get("max-age")),
        s_maxage=_seconds(found.get("s-maxage")),
        no_store="no-store" in found,
        no_cache="no-cache" in found,
        private="private" in found,
        public="public" in found,
        must_revalidate="must-revalidate" in found,
        proxy_revalidate="proxy-revalidate" in found,
        immutable="immutable" in found,
        stale_while_revalidate=_seconds(found.get("stale-while-revalidate")),
        stale_if_error=_seconds(found.get("stale-if-error")),
        max_stale=max_stale,
        min_fresh=_seconds(found.get("min-fresh")),
        only_if_cached="only-if-cached" in found,
    )


def request_cache_control(
    cache_control: list[bytes], pragma: list[bytes], *, pragma_always: bool = False
) -> CacheControl:
    """A request's directives from its Cache-Control and Pragma field values.

    `Pragma: no-cache` counts only without Cache-Control (RFC 9111 §5.4), unless `pragma_always`
    (Frontier clients: their hard refresh is `Pragma: no-cache` next to `Cache-Control:
    max-stale=1`, and squid honours it).
    """
    no_cache = any(b"no-cache" in value.lower() for value in pragma)
    if not cache_control:
        return CacheControl(no_cache=True) if no_cache else CacheControl()
    parsed = parse_cache_control(*cache_control)
    if no_cache and pragma_always and not parsed.no_cache:
        return replace(parsed, no_cache=True)
    return parsed


def _split(text: str) -> list[str]:
    """Split on commas outside quoted strings (`private="a, b"` is one directive)."""
    items: list[str] = []
    current: list[str] = []
    quoted = False
    for char in text:
        if char == '"':
            quoted = not quoted
        if char == "," and not quoted:
            items.append("".join(current))
            current = []
        else:
            current.append(char)
    items.append("".join(current))
    return [item.strip() for item in items if item.strip()]
