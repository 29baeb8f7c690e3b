"""What a shared fetch sends upstream: built from the cache key, never from one client's request.

A fetch the proxy makes for a cache key answers every request that waits on it and every later
hit, so nothing in it may come from one client beyond what the key (and the variant) says:

- the target is the key itself (`proxy.core.keys.primary_key`);
- of the client's fields only `FORWARDED_FIELDS` go up, normalised by `normalise_list` (which
  `variant_key` keys the variant by, so the fetch asks exactly what the key says), and they are
  the only fields a variant can be selected by; X-Forwarded-Host, Cookie, X-Original-URL and
  the like never reach an upstream through a shared fetch;
- the client's Cache-Control is re-rendered from the parsed directives that ask the tiers above
  to validate (`max-age`, `no-cache`); `max-stale` and anything else stay with the request that
  sent them (a servlet that echoes `max-stale` as `stale-if-error` would store it for everyone);
- Frontier URLs always carry an X-Frontier-Id (the client's, or the proxy's own), so a servlet
  that requires one can never answer the shared fetch with an error about one client's request.
"""

from __future__ import annotations

import re
from functools import lru_cache

from outpost.coding import accepts_gzip
from proxy.core.directives import CacheControl
from proxy.core.headers import Headers, get_all, split_members

__all__ = [
    "CODING_REQUESTS",
    "FORWARDED_FIELDS",
    "MAX_FIELD_BYTES",
    "normalise_list",
    "shared_coding",
    "shared_request_headers",
    "shared_value",
]

FORWARDED_FIELDS = frozenset({b"accept", b"accept-encoding", b"accept-language", b"x-frontier-id"})
# Request fields selecting each coding a shared fetch asks for (`shared_coding`): identity, gzip.
CODING_REQUESTS: tuple[list[tuple[bytes, bytes]], ...] = ([], [(b"accept-encoding", b"gzip")])
MAX_FIELD_BYTES = 1024
_VISIBLE = re.compile(rb"[ -~]*")
_MAX_INPUT_BYTES = 4 * MAX_FIELD_BYTES  # longer is refused before any parsing
_OWS = " \t"
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_MEDIA_RANGE = re.compile(r"([!#$%&'*+\-.^_`|~0-9A-Za-z]+)/([!#$%&'*+\-.^_`|~0-9A-Za-z]+)")
_QUOTED = re.compile(r'"(?:[\t !#-\[\]-~]|\\[\t -~])*"')
_LANGUAGE_RANGE = re.compile(r"[A-Za-z]{1,8}(?:-[A-Za-z0-9]{1,8})*|\*")
_QVALUE = re.compile(r"0(?:\.[0-9]{0,3})?|1(?:\.0{0,3})?")


def shared_value(value: bytes) -> bytes | None:
    """A request field's value as a shared fetch may carry it: trimmed of white space, or None
    when it is empty, too long or holds anything but visible ASCII and spaces (the upstream
    client would refuse it, failing the fetch for every request waiting on it)."""
    value = value.strip(b" \t")
    if not value or len(value) > MAX_FIELD_BYTES or not _VISIBLE.fullmatch(value):
        return None
    return value


@lru_cache(maxsize=1024)
def normalise_list(name: bytes, value: bytes) -> bytes | None:
    """A forwarded field's value (its lines joined with `,`) in the one spelling that both keys
    its variant and goes upstream in a shared fetch, or None when unusable (it then counts as
    absent); `shared_value`'s bounds hold for the result. Memoised: a farm sends few values.

    Accept and Accept-Language (RFC 9110 §12.5.1, §12.5.4) lose the white space around list
    members, `;` and commas, and the case of what is case-insensitive (media types, parameter
    names, language ranges: §8.3.1, §8.5.1; parameter values keep theirs, as "Parameter values
    might or might not be case-sensitive"). Weights take one spelling (`q=0.8`, none for 1,
    `q=0` kept: it means "not acceptable"); a member whose weight or syntax is invalid is
    dropped. Accept-Language members are sorted by weight, highest first, and members of equal
    weight keep the client's order: §12.5.4 notes that "some recipients treat the order in
    which language tags are listed as an indication of descending priority, particularly for
    tags that are assigned equal quality values", and the upstream sees this value. Other
    fields are only trimmed (`shared_value`); Accept-Encoding has `shared_coding`.
    """
    if name == b"accept" or name == b"accept-language":
        if len(value) > _MAX_INPUT_BYTES or not _VISIBLE.fullmatch(value.replace(b"\t", b" ")):
            return None
        text = value.decode("ascii")
        if name == b"accept":
            members = [_media_range(member) for member in split_members(text, ",")]
        else:
            ranked = [_language_range(member) for member in split_members(text, ",")]
            valid = [member for member in ranked if member is not None]
            valid.sort(key=lambda member: -member[0])  # stable: ties keep the client's order
            members = [rendered for _, rendered in valid]
        value = ",".join(member for member in members if member is not None).encode("ascii")
    return shared_value(value)


def _weight(qvalue: str) -> int | None:
    """A qvalue (RFC 9110 §12.4.2) in thousandths, or None if invalid."""
    if _QVALUE.fullmatch(qvalue) is None:
        return None
    whole, _, fraction = qvalue.partition(".")
    return int(whole) * 1000 + int(fraction.ljust(3, "0"))


def _render_weight(weight: int) -> str:
    if weight == 1000:
        return ""
    if weight == 0:
        return ";q=0"
    return ";q=0." + f"{weight:03d}".rstrip("0")


def _media_range(member: str) -> str | None:
    """An Accept member (`type/subtype *(;parameter) [;q=qvalue]`) normalised, or None."""
    if member.startswith(";"):
        return None
    head, *parameters = split_members(member, ";")
    if _MEDIA_RANGE.fullmatch(head) is None:
        return None
    rendered = [head.lower()]
    weight = 1000
    for parameter in parameters:
        key, eq, argument = parameter.partition("=")
        if not eq or _TOKEN.fullmatch(key) is None:
            return None
        if not (_TOKEN.fullmatch(argument) or _QUOTED.fullmatch(argument)):
            return None
        if key.lower() == "q":
            checked = _weight(argument)
            if checked is None:
                return None
            weight = checked
        else:
            rendered.append(f"{key.lower()}={argument}")
    return ";".join(rendered) + _render_weight(weight)


def _language_range(member: str) -> tuple[int, str] | None:
    """An Accept-Language member (`language-range [;q=qvalue]`) as (weight, normalised), or
    None when the range, the weight or anything else in it is invalid."""
    if member.startswith(";"):
        return None
    head, *parameters = split_members(member, ";")
    if _LANGUAGE_RANGE.fullmatch(head) is None or len(parameters) > 1:
        return None
    weight: int | None = 1000
    if parameters:
        key, eq, argument = parameters[0].partition("=")
        weight = _weight(argument) if eq and key.lower() == "q" else None
    if weight is None:
        return None
    return weight, head.lower() + _render_weight(weight)


@lru_cache(maxsize=1024)
def shared_coding(accept_encoding: bytes) -> str:
    """`gzip` or `identity` (what the origin can choose between) for an Accept-Encoding value,
    memoised: a farm's nodes all send the same value, and the hit path looks up a varied
    answer's variant on every request."""
    return "gzip" if accepts_gzip(accept_encoding.decode("latin-1")) else "identity"


def shared_request_headers(
    headers: Headers, cache_control: CacheControl, *, frontier: bool, own_id: bytes
) -> list[tuple[bytes, bytes]]:
    """The fields of a shared fetch for a request with `headers` and parsed `cache_control`
    (validators and Via are the caller's: they come from its own entry and name)."""
    shared: list[tuple[bytes, bytes]] = []
    for name in (b"accept", b"accept-language"):
        value = normalise_list(name, b",".join(get_all(headers, name)))
        if value is not None:
            shared.append((name, value))
    coding = shared_coding(b",".join(get_all(headers, b"accept-encoding")))
    shared.append((b"accept-encoding", coding.encode()))
    if frontier:
        client_id = shared_value(b",".join(get_all(headers, b"x-frontier-id")))
        shared.append((b"x-frontier-id", client_id or own_id))
    if cache_control.no_cache:  # a reload (the hard refresh): every tier above fetches again
        shared += [(b"cache-control", b"no-cache"), (b"pragma", b"no-cache")]
    elif cache_control.max_age is not None:  # end-to-end validation (max-age=0: the soft refresh)
        shared.append((b"cache-control", b"max-age=%d" % cache_control.max_age))
    return shared
