"""Targeted cache control (RFC 9213): response fields whose directives only the caches they
name obey, ahead of Cache-Control. Outpost's own is `Outpost-Cache-Control`; a proxy also obeys
`CDN-Cache-Control`, as a cache serving many clients on the origin's behalf.

A targeted field is an RFC 8941 Dictionary, parsed strictly (`http_sfv`): field lines are
combined with `,` first (RFC 8941 §4.2), and a field that fails to parse, or is empty, counts
as absent, so the next target is tried and then Cache-Control (RFC 9213 §2.1: "If a targeted
field in a given response is empty, or a parsing error is encountered, that field SHOULD be
ignored by the cache (i.e., it should behave as if the field were not present, likely falling
back to other cache-control mechanisms present)").

A directive whose value has the wrong type is ignored, not coerced (RFC 9213 §2.1:
"Implementations SHOULD NOT consume values that violate these inferred constraints. For
example, a consuming implementation that coerced a max-age with a decimal value into an
integer would behave differently than other implementations"): flags must be Boolean true
(`no-store=?0` is ignored), delta-seconds non-negative Integers (`max-age="60"`, `max-age=1.5`
and `max-age=-1` are ignored), qualified `no-cache` and `private` Strings of field names.
Dictionary keys are unique (the last wins, RFC 8941 §4.2.2) and parameters are ignored.
Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from http_sfv.dictionary import Dictionary
from http_sfv.item import Item

from proxy.core.directives import CacheControl
from proxy.core.headers import Headers, get_all

__all__ = [
    "OUTPOST_CACHE_CONTROL",
    "TARGETS",
    "TIER_AGENT",
    "from_outpost_tier",
    "strip_outpost_targeted",
    "targeted_cache_control",
]

OUTPOST_CACHE_CONTROL = b"outpost-cache-control"
# What an Outpost proxy's upstream requests send as User-Agent (`outpost-proxy/<name>`): the
# tiers below are sent Outpost-Cache-Control, every other client is not. Not a secret: a
# client that claims it only learns the tree's lifetimes.
TIER_AGENT = b"outpost-proxy/"
TARGETS: tuple[bytes, ...] = (OUTPOST_CACHE_CONTROL, b"cdn-cache-control")
_MAX_DELTA = 2**31  # RFC 9111 §1.2.2
_FLAGS = (
    "no-store",
    "no-cache",
    "private",
    "public",
    "must-revalidate",
    "proxy-revalidate",
    "immutable",
)
_DELTAS = ("max-age", "s-maxage", "stale-while-revalidate", "stale-if-error")
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


def targeted_cache_control(
    headers: Headers, targets: Sequence[bytes] = TARGETS
) -> CacheControl | None:
    """The directives of the first field of `targets` present in `headers` that parses, as a
    response's; None when none applies (the caller then uses Cache-Control)."""
    for target in targets:
        lines = get_all(headers, target)
        if not lines:
            continue
        members = _dictionary(b",".join(lines))
        if members is not None:
            return _directives(members)
    return None


def strip_outpost_targeted(headers: Headers) -> list[tuple[bytes, bytes]]:
    """`headers` without Outpost-Cache-Control: what a client that is not an Outpost cache is
    sent (the directives were for the tree's caches only)."""
    return [(key, value) for key, value in headers if key != OUTPOST_CACHE_CONTROL]


def _dictionary(value: bytes) -> dict[str, object] | None:
    """The members (name to bare value) of an RFC 8941 Dictionary; None if it does not parse
    or is empty."""
    parsed = Dictionary()
    try:
        parsed.parse(value)
    except (ValueError, IndexError):  # http_sfv reports malformed input as ValueError
        return None
    members: dict[str, object] = {}
    for name, member in parsed.items():
        if isinstance(member, Item):
            members[name] = member.value
        else:
            members[name] = member  # an Inner List: valid for no directive here
    return members or None


def _directives(members: dict[str, object]) -> CacheControl:
    flags = {name: members.get(name) is True for name in _FLAGS}
    deltas = {name: _seconds(members.get(name)) for name in _DELTAS}
    no_cache_fields = _field_names(members.get("no-cache"))
    private_fields = _field_names(members.get("private"))
    return CacheControl(
        max_age=deltas["max-age"],
        s_maxage=deltas["s-maxage"],
        stale_while_revalidate=deltas["stale-while-revalidate"],
        stale_if_error=deltas["stale-if-error"],
        no_store=flags["no-store"],
        no_cache=flags["no-cache"],
        private=flags["private"],
        public=flags["public"],
        must_revalidate=flags["must-revalidate"],
        proxy_revalidate=flags["proxy-revalidate"],
        immutable=flags["immutable"],
        no_cache_fields=no_cache_fields,
        private_fields=private_fields,
    )


def _seconds(value: object) -> int | None:
    """A non-negative Integer as delta-seconds, capped at 2**31; anything else ignored (a
    Boolean is not an Integer here, though Python's bool is an int)."""
    if type(value) is not int or value < 0:
        return None
    return min(value, _MAX_DELTA)


def _field_names(value: object) -> tuple[bytes, ...]:
    """The field names of a qualified `no-cache` or `private`: a String listing tokens; any
    other value, or a String that is not such a list, names none and is ignored (`?1` is the
    unqualified form, a flag)."""
    if type(value) is not str:  # not a Token, Display String, Byte Sequence, ...
        return ()
    names = [name.strip(" \t") for name in value.split(",")]
    names = [name for name in names if name]
    if not names or not all(_TOKEN.fullmatch(name) for name in names):
        return ()
    return tuple(dict.fromkeys(name.lower().encode("ascii") for name in names))


def from_outpost_tier(request_headers: Headers) -> bool:
    """Whether a request comes from an Outpost tier (which obeys Outpost-Cache-Control)."""
    agent = get_all(request_headers, b"user-agent")
    return bool(agent) and agent[0].startswith(TIER_AGENT)
