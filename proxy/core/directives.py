"""Cache-Control (RFC 9111 §5.2) and its extensions: stale-while-revalidate, stale-if-error
(RFC 5861) and immutable (RFC 8246), parsed into one frozen value.

A message's field lines are merged (RFC 9110 §5.3); directive names compare case-insensitively
and unknown directives are ignored (RFC 9111 §5.2.3). Arguments take the token or the
quoted-string form (§5.2: "recipients ought to accept both forms, even if a specific form is
required for generation"). What an invalid or repeated argument means depends on the side:

- a response's `max-age` or `s-maxage` that is invalid, or repeated with different values, is
  taken as 0 (§4.2.1: "the most restrictive directive should be honored", and "caches are
  encouraged to consider responses that have invalid freshness information to be stale"); an
  invalid `s-maxage` still counts as present, so it still implies proxy-revalidate (§5.2.2.10);
- a request's invalid argument is ignored: taken as 0 it would change what the client asked
  for (an invalid `max-age` is not a reload, an invalid `max-stale` is not "any staleness");
  repeated values take the most restrictive (smallest max-age and max-stale, largest min-fresh);
- `stale-while-revalidate` and `stale-if-error` only ever widen what a cache may serve, so an
  invalid one is ignored and repeated ones take the smallest.

Flags (`no-store`, `must-revalidate`, ...) count whatever follows them. `no-cache` and `private`
on a response may name fields (§5.2.2.4, §5.2.2.7): qualified, they restrict only those fields
(`no_cache_fields`, `private_fields`); an argument that is not a list of field names counts as
the unqualified directive, the more restrictive reading.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from functools import lru_cache

from proxy.core.headers import split_members

__all__ = ["CacheControl", "parse_cache_control", "request_cache_control"]

_MAX_DELTA = 2**31  # RFC 9111 §1.2.2: treat larger delta-seconds as this
_ANY = _MAX_DELTA  # `max-stale` without a value: any staleness (§5.2.1.2)
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_OWS = " \t"


@dataclass(frozen=True, slots=True)
class CacheControl:
    max_age: int | None = None
    s_maxage: int | None = None
    no_store: bool = False
    no_cache: bool = False  # unqualified: every use must be validated
    private: bool = False  # unqualified: a shared cache must not store the response
    public: bool = False
    must_revalidate: bool = False
    proxy_revalidate: bool = False
    immutable: bool = False
    stale_while_revalidate: int | None = None
    stale_if_error: int | None = None
    max_stale: int | None = None  # request; `max-stale` without a value: any staleness
    min_fresh: int | None = None
    only_if_cached: bool = False
    no_cache_fields: tuple[bytes, ...] = ()  # `no-cache="a, b"`: lower-case field names
    private_fields: tuple[bytes, ...] = ()  # `private="a, b"`: lower-case field names


# One directive as found: its lower-case name and its argument, which is None when there is
# none and _INVALID when it is not a token or a quoted-string (or has space around `=`).
_INVALID = "\x00invalid"
_Directive = tuple[str, str | None]


def parse_cache_control(*values: str | bytes | None, request: bool = False) -> CacheControl:
    """Merge every Cache-Control field line of a message into one `CacheControl`; `request`
    selects the request side's rules for invalid and repeated arguments (module docstring).
    Memoised: the same few values arrive again and again."""
    return _parse(values, request)


@lru_cache(maxsize=1024)
def _parse(values: tuple[str | bytes | None, ...], request: bool) -> CacheControl:
    found: dict[str, list[str | None]] = {}
    for value in values:
        if not value:
            continue
        text = value.decode("latin-1") if isinstance(value, bytes) else value
        for name, argument in _directives(text):
            found.setdefault(name, []).append(argument)
    no_cache, no_cache_fields = _qualified(found.get("no-cache"), qualifiable=not request)
    private, private_fields = _qualified(found.get("private"), qualifiable=not request)
    lifetime = _smallest_valid if request else _response_lifetime
    return CacheControl(
        max_age=lifetime(found.get("max-age")),
        s_maxage=lifetime(found.get("s-maxage")),
        no_cache=no_cache,
        no_cache_fields=no_cache_fields,
        private=private,
        private_fields=private_fields,
        stale_while_revalidate=_smallest_valid(found.get("stale-while-revalidate")),
        stale_if_error=_smallest_valid(found.get("stale-if-error")),
        max_stale=_max_stale(found.get("max-stale")),
        min_fresh=_largest_valid(found.get("min-fresh")),
        no_store="no-store" in found,
        public="public" in found,
        must_revalidate="must-revalidate" in found,
        proxy_revalidate="proxy-revalidate" in found,
        immutable="immutable" in found,
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
    parsed = parse_cache_control(*cache_control, request=True)
    if no_cache and pragma_always and not parsed.no_cache:
        return replace(parsed, no_cache=True)
    return parsed


def _seconds(argument: str | None) -> int | None:
    """delta-seconds (RFC 9111 §1.2.2): ASCII digits only, capped at 2**31; None if invalid."""
    if not argument or not (argument.isascii() and argument.isdigit()):  # "²".isdigit()
        return None
    significant = argument.lstrip("0")
    if len(significant) > 10:  # beyond 2**31 anyway; int() refuses over 4300 digits
        return _MAX_DELTA
    return min(int(significant or "0"), _MAX_DELTA)


def _response_lifetime(arguments: list[str | None] | None) -> int | None:
    """A response's max-age or s-maxage: 0 when any occurrence is invalid or they disagree."""
    if arguments is None:
        return None
    seconds = {_seconds(argument) for argument in arguments}
    if len(seconds) != 1 or None in seconds:
        return 0
    return seconds.pop()


def _valid(arguments: list[str | None] | None) -> list[int]:
    return [s for s in map(_seconds, arguments or ()) if s is not None]


def _smallest_valid(arguments: list[str | None] | None) -> int | None:
    return min(_valid(arguments), default=None)


def _largest_valid(arguments: list[str | None] | None) -> int | None:
    return max(_valid(arguments), default=None)


def _max_stale(arguments: list[str | None] | None) -> int | None:
    """Without a value: any staleness; an invalid value is ignored; the smallest wins."""
    allowed = [_ANY if a is None else _seconds(a) for a in arguments or ()]
    return min((s for s in allowed if s is not None), default=None)


def _qualified(
    arguments: list[str | None] | None, *, qualifiable: bool
) -> tuple[bool, tuple[bytes, ...]]:
    """(unqualified, field names) for `no-cache` or `private`. An argument that is not a list
    of field names counts as unqualified; an unqualified occurrence wins over qualified ones."""
    if arguments is None:
        return False, ()
    if not qualifiable:
        return True, ()
    names: dict[bytes, None] = {}
    for argument in arguments:
        listed = _field_names(argument)
        if listed is None:
            return True, ()
        names.update(dict.fromkeys(listed))
    return False, tuple(names)


def _field_names(argument: str | None) -> list[bytes] | None:
    if argument is None or argument is _INVALID:
        return None
    names = [name.strip(_OWS) for name in argument.split(",")]
    names = [name for name in names if name]
    if not names or not all(_TOKEN.fullmatch(name) for name in names):
        return None
    return [name.lower().encode("ascii") for name in names]


def _directives(text: str) -> Iterable[_Directive]:
    for item in split_members(text):
        name, eq, argument = item.partition("=")
        spaced = name != name.rstrip(_OWS)
        name = name.rstrip(_OWS).lower()
        if not name:
            continue
        if not eq:
            yield name, None
        elif spaced:
            yield name, _INVALID  # `max-age = 60`: no white space around `=` (§5.2)
        else:
            yield name, _argument(argument)


def _argument(text: str) -> str:
    """A token as is, a quoted-string unquoted (RFC 9110 §5.6.4), anything else _INVALID."""
    if _TOKEN.fullmatch(text):
        return text
    if len(text) < 2 or text[0] != '"' or text[-1] != '"':
        return _INVALID
    chars: list[str] = []
    escaped = False
    for char in text[1:-1]:
        if escaped:
            chars.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == '"':
            return _INVALID  # a quote that ends the string before its end
        else:
            chars.append(char)
    return _INVALID if escaped else "".join(chars)
