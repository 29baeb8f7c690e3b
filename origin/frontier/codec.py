"""The `p1` parameter: SQL, zlib-compressed, base64-encoded in Frontier's URL alphabet.

frontier_client (`fn-base64.c`, base64URL) and fnget.py write standard base64 with `+` → `.`,
`/` → `-` and the `=` padding → `_`, without line breaks; the servlet (`SQLPlugin`) maps them back
and inflates the zlib stream. Bind values follow the SQL after colons: when the SQL holds both a
`:` and a `?`, the servlet splits it on `:` (Java `String.split`, so trailing empty values are
dropped), runs the first part and binds the rest, as strings, to the `?` in order.
"""

from __future__ import annotations

import base64
import binascii
import string
import zlib

from origin.frontier.params import FrontierError

__all__ = ["MAX_SQL_BYTES", "decode_p1", "encode_p1", "split_binds"]

MAX_SQL_BYTES = 256 * 1024  # inflated SQL: bounds a zip bomb in a URL, and the parser's work

_FROM_URL = str.maketrans({".": "+", "-": "/", "_": "="})
_TO_URL = str.maketrans({"+": ".", "/": "-", "=": "_"})


def encode_p1(sql: str, level: int = 9) -> str:
    """`sql` as frontier_client encodes it: zlib (level 9), base64 in the URL alphabet."""
    return base64.b64encode(zlib.compress(sql.encode(), level)).decode("ascii").translate(_TO_URL)


def decode_p1(p1: str) -> str:
    """The SQL text of a `p1` value; FrontierError if it is not base64 of a zlib stream."""
    text = "".join(p1.split()).translate(_FROM_URL).rstrip("=")  # padding is optional
    if len(text) % 4 == 1 or any(c not in _B64 for c in text):
        raise FrontierError("p1 is not base64 in the Frontier URL alphabet")
    try:
        compressed = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except binascii.Error as exc:
        raise FrontierError(f"p1 is not base64: {exc}") from None
    inflater = zlib.decompressobj()
    try:
        raw = inflater.decompress(compressed, MAX_SQL_BYTES + 1)
    except zlib.error as exc:
        raise FrontierError(f"p1 is not a zlib stream: {exc}") from None
    if len(raw) > MAX_SQL_BYTES:
        raise FrontierError(f"p1 inflates to more than {MAX_SQL_BYTES} bytes")
    if not inflater.eof:
        raise FrontierError("p1 is a truncated zlib stream")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise FrontierError("the SQL in p1 is not UTF-8 text") from None


def split_binds(sql: str) -> tuple[str, tuple[str, ...]]:
    """The statement and its bind values, split as the servlet does (`sql:value1:value2`)."""
    if ":" not in sql or "?" not in sql:
        return sql, ()
    tokens = sql.split(":")
    while len(tokens) > 1 and tokens[-1] == "":  # Java's split drops trailing empty strings
        tokens.pop()
    return tokens[0], tuple(tokens[1:])


_B64 = frozenset(string.ascii_letters + string.digits + "+/")
