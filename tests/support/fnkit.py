"""A Frontier client for the tests, written from frontier_client and fnget.py, not from the origin.

Requests are built as frontier_client builds them: the SQL zlib-compressed at level 9, base64
with `+/=` → `.-_` and no line breaks (`fn-base64.c`, base64URL), the bind values after colons
(the frontier Python DB-API), `X-Frontier-Id` and `Cache-Control: max-stale=1` (`fn-htclient.c`).
Answers are read as fnget.py and frontier_client read them: the XML parsed, each payload's <data>
base64-decoded (newlines skipped), the md5 of those bytes checked against the quality's, zlib
inflated for BLOBzip, the size checked against `full_size`, then the typed records split: a type
byte, `0x80` for NULL, `6` for a byte array (big-endian int32 length, then the bytes), `7` for the
end of a record; the first record holds each column's name and type.
"""

from __future__ import annotations

import base64
import hashlib
import struct
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from xml.dom import minidom

__all__ = [
    "HEADERS",
    "Fetch",
    "Answer",
    "Payload",
    "as_frontier",
    "command",
    "encode_query",
    "frontier_url",
    "parse_answer",
]

Fetch = Callable[..., list[Sequence[Any]]]  # rows straight from the database (conftest's `fetch`)

HEADERS = {"X-Frontier-Id": "fnkit 1.0 (outpost tests)", "Cache-Control": "max-stale=1"}


def encode_query(sql: str, binds: Sequence[str] = ()) -> str:
    """p1 as frontier_client writes it (fn_gzip_str2urlenc)."""
    text = ":".join([sql, *binds])
    encoded = base64.b64encode(zlib.compress(text.encode(), 9)).decode()
    return encoded.replace("+", ".").replace("/", "-").replace("=", "_")


def command(
    sql: str, binds: Sequence[str] = (), *, encoding: str = "BLOBzip5", extra: str = ""
) -> str:
    """One payload's parameters: `type=frontier_request:1:DEFAULT&encoding=…&p1=…[extra]`."""
    return (
        f"type=frontier_request:1:DEFAULT&encoding={encoding}&p1={encode_query(sql, binds)}" + extra
    )


def frontier_url(
    *queries: str | tuple[str, Sequence[str]],
    servlet: str = "outpost",
    encoding: str = "BLOBzip5",
    form: str = "path",
    extra: str = "",
) -> str:
    """`/{servlet}/Frontier/type=…&encoding=…&p1=…` (or `Frontier?…`): a command a query."""
    commands = []
    for query in queries:
        sql, binds = (query, ()) if isinstance(query, str) else query
        commands.append(command(sql, binds, encoding=encoding, extra=extra))
    separator = "/" if form == "path" else "?"
    return f"/{servlet}/Frontier{separator}{'&'.join(commands)}"


@dataclass
class Payload:
    encoding: str
    error: int
    message: str | None
    md5: str | None
    records: int | None
    full_size: int
    columns: list[tuple[str, str]] = field(default_factory=list)
    rows: list[list[bytes | None]] = field(default_factory=list)
    stream: bytes = b""


@dataclass
class Answer:
    version: str
    payloads: list[Payload]
    transaction_payloads: int | None
    global_error: str | None


def parse_answer(body: bytes) -> Answer:
    """Read an answer as frontier_client does; assert what it checks (md5, full size)."""
    assert body.startswith(b'<?xml version="1.0" encoding="US-ASCII"?>\n'), body[:80]
    document = minidom.parseString(body)
    root = document.documentElement
    assert root.tagName == "frontier"
    errors = document.getElementsByTagName("global_error")
    transactions = document.getElementsByTagName("transaction")
    answer = Answer(
        version=root.getAttribute("version"),
        payloads=[],
        transaction_payloads=int(transactions[0].getAttribute("payloads"))
        if transactions
        else None,
        global_error=errors[0].getAttribute("msg") if errors else None,
    )
    for element in document.getElementsByTagName("payload"):
        answer.payloads.append(_payload(element))
    return answer


def _payload(element: minidom.Element) -> Payload:
    encoding = element.getAttribute("encoding")
    (data,) = element.getElementsByTagName("data")
    (quality,) = element.getElementsByTagName("quality")
    text = "".join(n.data for n in data.childNodes if n.nodeType == n.TEXT_NODE)
    payload = Payload(
        encoding=encoding,
        error=int(quality.getAttribute("error")),
        message=quality.getAttribute("message") if quality.hasAttribute("message") else None,
        md5=quality.getAttribute("md5") if quality.hasAttribute("md5") else None,
        records=int(quality.getAttribute("records")) if quality.hasAttribute("records") else None,
        full_size=int(quality.getAttribute("full_size")),
    )
    if payload.error:
        return payload  # frontier_client stops at the error code
    decoded = base64.b64decode(text)  # skips the newlines between lines, as fn-base64.c
    assert hashlib.md5(decoded).hexdigest() == payload.md5, "md5 mismatch"
    stream = zlib.decompress(decoded) if "zip" in encoding else decoded
    assert len(stream) == payload.full_size, "decoded size does not match full_size"
    records = _records(stream)
    header = records[0]
    payload.columns = [(_text(header[i]), _text(header[i + 1])) for i in range(0, len(header), 2)]
    payload.rows = records[1:]
    payload.stream = stream
    assert payload.records == len(payload.rows)
    return payload


def _records(stream: bytes) -> list[list[bytes | None]]:
    records: list[list[bytes | None]] = []
    record: list[bytes | None] = []
    pos = 0
    while pos < len(stream):
        kind = stream[pos]
        pos += 1
        if kind == 7:
            records.append(record)
            record = []
        elif kind & 0x80:
            record.append(None)
        elif kind == 6:
            (length,) = struct.unpack(">i", stream[pos : pos + 4])
            record.append(stream[pos + 4 : pos + 4 + length])
            pos += 4 + length
        else:
            raise AssertionError(f"unexpected type byte {kind}: the servlet writes only strings")
    assert not record, "the stream must end with an end-of-record"
    return records


def _text(value: bytes | None) -> str:
    assert value is not None
    return value.decode()


def as_frontier(value: object) -> bytes | None:
    """A database value as JDBC's getString renders it into the stream (bytes as they are)."""
    if value is None:
        return None
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    if isinstance(value, bool):
        return b"1" if value else b"0"
    if isinstance(value, int | Decimal | str):
        return str(value).encode()
    raise TypeError(f"no Frontier rendering for {value!r} in these tests")
