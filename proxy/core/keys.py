"""Cache keys: Outpost's own reads key on their canonical URL, so parameter order or number
spelling never splits the cache; anything else (Frontier URLs among them) on its path and query
exactly as received, escapes and all.

The key is also the request target the proxy sends upstream for a shared fetch: one function of
the same bytes decides both, so no request can have an answer stored under another URL's key
(a `%2F` that the key decoded but the upstream did not, say). Targets that no upstream should
see are refused here: anything but printable ASCII, and a path whose escapes decode to control
characters (`%0d%0a`: header injection and forged log lines).

A response's `Vary` adds the request's values of the named fields to the key, as a shared fetch
forwards them (`proxy.core.shared`): a field it does not forward counts as absent. Accept-Encoding
is normalised to `gzip` or `identity` (what the origin can actually choose between), so the
many spellings clients send share two variants instead of one per spelling; Accept and
Accept-Language to one spelling of the same preferences (`proxy.core.shared.normalise_list`,
also what the shared fetch sends), so `fr-CH, fr;q=0.9` and `FR-ch,fr;q=0.900` share one.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

from outpost.errors import BadRequest, OutpostError, echo
from outpost.urls import canonical
from proxy.core.headers import Headers, get_all
from proxy.core.shared import FORWARDED_FIELDS, normalise_list, shared_coding

__all__ = ["primary_key", "variant_key"]

_TARGET = re.compile(r"[!-~]*")  # printable ASCII, no space
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_TARGET_RULE = "a path and query of printable ASCII, other bytes percent-encoded"


def primary_key(raw_path: str, query_string: str = "") -> str:
    """The key of a request for `raw_path` (as received: ASGI's `raw_path`, percent-escapes and
    all) and `query_string`; also the target a shared fetch sends upstream. Raises BadRequest
    for a target no upstream should see."""
    if _TARGET.fullmatch(raw_path) is None or _TARGET.fullmatch(query_string) is None:
        shown = echo(f"{raw_path}?{query_string}")
        raise BadRequest(f"request target {shown} is not printable ASCII", accepted=_TARGET_RULE)
    path = unquote(raw_path)
    if _CONTROL.search(path) is not None:
        raise BadRequest(
            f"request path {echo(raw_path)} decodes to control characters",
            accepted=_TARGET_RULE + ", no escaped control characters in the path",
        )
    if path.startswith("/v1/"):
        try:
            return canonical(path, query_string)
        except OutpostError:
            pass  # not a well-formed read: the upstream will say so; key it as sent
    return f"{raw_path}?{query_string}" if query_string else raw_path


def variant_key(primary: str, vary: tuple[bytes, ...], request_headers: Headers) -> str:
    """The key of the variant of `primary` selected by the request's `vary` fields."""
    if not vary:
        return primary
    parts = [primary]
    for name in vary:
        if name not in FORWARDED_FIELDS:
            parts.append("")  # never forwarded: the answer is the one for its absence
            continue
        values = get_all(request_headers, name)
        if name == b"accept-encoding":
            parts.append(shared_coding(b",".join(values)))
        else:
            shared = normalise_list(name, b",".join(values))
            parts.append("" if shared is None else shared.decode("ascii"))
    return "\x1f".join(parts)
