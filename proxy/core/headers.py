"""Header hygiene for a proxy: hop-by-hop fields stripped (RFC 9110 §7.6.1), `Via` added,
field lookup over ASGI-style header lists (lower-case byte names)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

__all__ = [
    "HOP_BY_HOP",
    "Headers",
    "end_to_end",
    "get_all",
    "get_first",
    "split_members",
    "with_via",
]

Headers = Sequence[tuple[bytes, bytes]]
_OWS = " \t"

HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)


def get_first(headers: Headers, name: bytes) -> bytes | None:
    for key, value in headers:
        if key == name:
            return value
    return None


def get_all(headers: Headers, name: bytes) -> list[bytes]:
    return [value for key, value in headers if key == name]


def end_to_end(
    headers: Iterable[tuple[bytes, bytes]], *, drop: Iterable[bytes] = ()
) -> list[tuple[bytes, bytes]]:
    """Lower-cased copy without hop-by-hop fields, those named in `Connection`, and `drop`."""
    pairs = [(key.lower(), value) for key, value in headers]
    named = {
        token.strip().lower()
        for key, value in pairs
        if key == b"connection"
        for token in value.split(b",")
    }
    excluded = HOP_BY_HOP | named | {d.lower() for d in drop}
    return [(key, value) for key, value in pairs if key not in excluded]


def with_via(headers: list[tuple[bytes, bytes]], name: str) -> list[tuple[bytes, bytes]]:
    """Append this proxy to `Via` (RFC 9110 §7.6.3), keeping what upstreams wrote."""
    ours = f"1.1 {name}".encode()
    previous = get_all(headers, b"via")
    rest = [(key, value) for key, value in headers if key != b"via"]
    return [*rest, (b"via", b", ".join([*previous, ours]))]


def split_members(text: str, separator: str = ",") -> list[str]:
    """`text` split on `separator` outside quoted strings (backslash escapes honoured inside
    them), members trimmed, empty ones dropped (RFC 9110 §5.6.1): `private="a, b"` is one."""
    parts: list[str] = []
    start = 0
    quoted = escaped = False
    for index, char in enumerate(text):
        if escaped:
            escaped = False
        elif quoted and char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == separator and not quoted:
            parts.append(text[start:index])
            start = index + 1
    parts.append(text[start:])
    return [stripped for part in parts if (stripped := part.strip(_OWS))]
