"""The Frontier XML answer, byte for byte as the servlet's `ResponseFormat` writes it.

    <?xml version="1.0" encoding="US-ASCII"?>
    <!DOCTYPE frontier SYSTEM "http://frontier.fnal.gov/frontier.dtd">
    <frontier version="3.42" xmlversion="1.0">
     <transaction payloads="1">
      <payload type="frontier_request" version="1" encoding="BLOBzip5">
       <data>eJx…</data>
       <quality error="0" md5="…" records="3" full_size="120"/>
      </payload>
     </transaction>
    </frontier>

`<data>` is base64 (standard alphabet, `=` padding) in lines of 76 characters, each full line
followed by a newline. The md5 is over the bytes the client gets by decoding that base64 (so over
the zlib stream for BLOBzip), `full_size` is the length of the row stream before compression. A
failed payload has `error="1"` and a `message`; an error before any payload is a `<global_error>`.
"""

from __future__ import annotations

import base64
import hashlib
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "FRONTIER_VERSION",
    "SERVER_NAME",
    "XML_VERSION",
    "EncodingError",
    "Packed",
    "PayloadAnswer",
    "base64_lines",
    "pack",
    "parse_encoding",
    "render",
    "render_global_error",
    "xml_attribute",
]

FRONTIER_VERSION = "3.42"  # the servlet release whose protocol this speaks
XML_VERSION = "1.0"
SERVER_NAME = "outpost"  # the servlet's ServerName: prefixes every error message
LINE = 76


class EncodingError(Exception):
    """An `encoding=` the servlet does not know (payload error, as in `Payload.send`)."""


def parse_encoding(encoding: str) -> int | None:
    """The zlib level of BLOBzip (5) or BLOBzipN (N in 0..9); None for BLOB (not compressed).

    BLOBzip0 is a zlib stream of stored blocks: frontier_client inflates every encoding that
    names "zip" (the servlet sends level 0 uncompressed, which the client cannot read).
    """
    if not encoding.startswith("BLOB"):
        raise EncodingError(f"Unsupported encoder: {encoding}")
    sub = encoding[4:]
    if not sub:
        return None
    if not sub.startswith("zip"):
        raise EncodingError(f"Unrecognized BLOB sub-encoding {sub}")
    level = sub[3:]
    if not level:
        return 5
    if not level.isascii() or not level.lstrip("+-").isdigit():
        raise EncodingError(f"BLOB zip level {level} not an integer")
    if not 0 <= int(level) <= 9:
        raise EncodingError("BLOB zip level less than 0 or greater than 9")
    return int(level)


@dataclass(frozen=True)
class Packed:
    """A row stream as it goes in `<data>`: base64 lines, md5 of the decoded bytes, full size."""

    data: str
    md5: str
    full_size: int


def pack(stream: bytes, level: int | None) -> Packed:
    """Compress (unless level is None), digest and base64 a row stream, as `BlobTypedEncoder`."""
    body = stream if level is None else zlib.compress(stream, level)
    return Packed(base64_lines(body), hashlib.md5(body).hexdigest(), len(stream))


def base64_lines(data: bytes) -> str:
    """Base64 with a newline after every full 76-character line (none after a partial one)."""
    text = base64.b64encode(data).decode("ascii")
    full = len(text) // LINE * LINE
    lines = "".join(text[i : i + LINE] + "\n" for i in range(0, full, LINE))
    return lines + text[full:]


@dataclass(frozen=True)
class PayloadAnswer:
    """One `<payload>`: its data and records, or its error message (with or without data)."""

    obj_name: str
    obj_version: str
    encoding: str
    packed: Packed | None = None
    records: int | None = None
    error: str | None = None


def render(payloads: Sequence[PayloadAnswer], requested: int) -> bytes:
    """The whole answer; `requested` is the number of payloads asked for (the transaction's)."""
    parts = [_begin(), f' <transaction payloads="{requested}">\n']
    for payload in payloads:
        parts.append(
            f'  <payload type="{xml_attribute(payload.obj_name)}"'
            f' version="{xml_attribute(payload.obj_version)}"'
            f' encoding="{xml_attribute(payload.encoding)}">\n'
        )
        parts.append(f"   <data>{payload.packed.data if payload.packed else ''}</data>\n")
        parts.append(_quality(payload))
        parts.append("  </payload>\n")
    parts.append(" </transaction>\n</frontier>\n")
    return "".join(parts).encode("ascii")


def render_global_error(message: str) -> bytes:
    """An answer refused before its payloads: `<global_error>` and no transaction."""
    text = xml_attribute(f"{SERVER_NAME} Error: {message}")
    return f'{_begin()}\n  <global_error msg="{text}"/>\n</frontier>\n'.encode("ascii")


def _begin() -> str:
    return (
        '<?xml version="1.0" encoding="US-ASCII"?>\n'
        '<!DOCTYPE frontier SYSTEM "http://frontier.fnal.gov/frontier.dtd">\n'
        f'<frontier version="{FRONTIER_VERSION}" xmlversion="{XML_VERSION}">\n'
    )


def _quality(payload: PayloadAnswer) -> str:
    attributes = [f'error="{0 if payload.error is None else 1}"']
    if payload.error is not None:
        attributes.append(f'message="{xml_attribute(f"{SERVER_NAME} {payload.error}")}"')
    if payload.packed is not None:
        attributes.append(f'md5="{payload.packed.md5}"')
    if payload.error is None and payload.records is not None:
        attributes.append(f'records="{payload.records}"')
    full_size = payload.packed.full_size if payload.packed and payload.error is None else 0
    attributes.append(f'full_size="{full_size}"')
    return f"   <quality {' '.join(attributes)}/>\n"


def xml_attribute(text: str) -> str:
    """`text` safe in a double-quoted attribute of a US-ASCII document."""
    out = []
    for char in text:
        code = ord(char)
        if char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif (code < 0x20 and char not in "\t\n\r") or 0xD800 <= code <= 0xDFFF or code > 0x10FFFF:
            out.append("?")  # not allowed in XML at all
        elif code > 0x7E:
            out.append(f"&#{code};")
        else:
            out.append(char)
    return "".join(out)


_ESCAPES = {"&": "&amp;", "'": "&apos;", '"': "&quot;", ">": "&gt;", "<": "&lt;"}
