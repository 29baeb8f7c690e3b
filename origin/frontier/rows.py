"""The typed row stream (the servlet's `BlobTypedEncoder`), and a decoder that reads it back.

Each field is a type byte, then its value; `TYPE_EOR` ends a record. The first record is the
header: for each column, its name and its SQL type name. The servlet writes every value as a
string (`TYPE_ARRAY_BYTE`: a big-endian int32 length, then the bytes; BLOBs as their bytes), and a
NULL as the type byte with `BIT_NULL` set; frontier_client and its Python DB-API read values that
way and convert them by the header's type names. There is no trailer: the stream ends with the
last record's `TYPE_EOR`, and the client knows its length from the quality's `full_size`.

Type names are the Oracle ones the servlet reports (CORAL's Frontier type converter and the ATLAS
and CMS Python clients map them): NUMBER(1) for booleans, NUMBER(5), NUMBER(10) and NUMBER(20)
for 16-, 32- and 64-bit integers, NUMBER for decimals, BINARY_FLOAT and BINARY_DOUBLE, VARCHAR2
for text (and for a column of NULLs only), BLOB for bytes.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from decimal import Decimal

__all__ = [
    "BIT_NULL",
    "TYPE_ARRAY_BYTE",
    "TYPE_BYTE",
    "TYPE_DOUBLE",
    "TYPE_EOR",
    "TYPE_FLOAT",
    "TYPE_INT4",
    "TYPE_INT8",
    "TYPE_TIME",
    "AnswerTooLarge",
    "RowStream",
    "decode_rows",
    "render_value",
    "type_name_for_oid",
    "type_name_for_values",
]

BIT_NULL = 0x80
TYPE_BYTE = 0
TYPE_INT4 = 1
TYPE_INT8 = 2
TYPE_FLOAT = 3
TYPE_DOUBLE = 4
TYPE_TIME = 5
TYPE_ARRAY_BYTE = 6
TYPE_EOR = 7

VARCHAR = "VARCHAR2"
BLOB = "BLOB"

# PostgreSQL type OIDs (pg_type) → the Oracle type name the servlet would report.
_OID_NAMES = {
    16: "NUMBER(1)",  # bool
    17: BLOB,  # bytea
    18: "CHAR(1)",  # "char"
    20: "NUMBER(20)",  # int8
    21: "NUMBER(5)",  # int2
    23: "NUMBER(10)",  # int4
    26: "NUMBER(10)",  # oid
    700: "BINARY_FLOAT",  # float4
    701: "BINARY_DOUBLE",  # float8
    1700: "NUMBER",  # numeric
    1042: "CHAR",  # bpchar
    1043: VARCHAR,  # varchar
    25: VARCHAR,  # text
    19: VARCHAR,  # name
    705: VARCHAR,  # unknown (an untyped literal)
}


class AnswerTooLarge(Exception):
    """More rows or bytes than the origin serves in one payload."""


def type_name_for_oid(oid: object) -> str | None:
    """The type name for a PostgreSQL result column's type OID, if it has one."""
    return _OID_NAMES.get(oid) if isinstance(oid, int) else None


def type_name_for_values(values: Sequence[object]) -> str:
    """The type name a column's values call for, when the database does not say (SQLite)."""
    return _name_for_kinds({_kind(v) for v in values if v is not None})


def _name_for_kinds(kinds: set[str]) -> str:
    if len(kinds) == 1:
        return next(iter(kinds))
    if kinds and kinds <= {"NUMBER(1)", "NUMBER(20)", "BINARY_DOUBLE", "NUMBER"}:
        return "NUMBER"  # mixed numbers (SQLite's dynamic typing)
    return VARCHAR


def _kind(value: object) -> str:
    if isinstance(value, bool):
        return "NUMBER(1)"
    if isinstance(value, int):
        return "NUMBER(20)"
    if isinstance(value, float):
        return "BINARY_DOUBLE"
    if isinstance(value, Decimal):
        return "NUMBER"
    if isinstance(value, bytes | bytearray | memoryview):
        return BLOB
    return VARCHAR


def render_value(value: object) -> bytes | None:
    """A value as the bytes of its string form (what JDBC's getString gives), None for NULL."""
    if value is None:
        return None
    if isinstance(value, bytes):
        return value
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    if isinstance(value, bool):
        return b"1" if value else b"0"
    if isinstance(value, float):
        return repr(value).encode()  # shortest round-trip form; atof and float() read it
    if isinstance(value, str):
        return value.encode()
    return str(value).encode()


def _field(value: bytes | None) -> bytes:
    if value is None:
        return bytes((TYPE_ARRAY_BYTE | BIT_NULL,))
    return struct.pack(">BI", TYPE_ARRAY_BYTE, len(value)) + value


class RowStream:
    """Collects rows under a row and byte cap, then writes the stream with the header first.

    The header's type names need every value on SQLite (its columns carry no types), so rows are
    rendered as they come and the stream is assembled at the end.
    """

    def __init__(
        self,
        names: Sequence[str],
        type_hints: Sequence[str | None],
        *,
        max_rows: int,
        max_bytes: int,
    ) -> None:
        self.names = list(names)
        # hints that do not line up with the columns are not hints (the database decides)
        usable = len(type_hints) == len(self.names)
        self.hints: list[str | None] = list(type_hints) if usable else [None] * len(self.names)
        self.max_rows = max_rows
        self.max_bytes = max_bytes
        self.records = 0
        self.size = 0
        self._fields: list[bytes] = []
        self._kinds: list[set[str]] = [set() for _ in self.names]

    def add(self, row: Sequence[object]) -> None:
        """One record; AnswerTooLarge past the caps."""
        self.records += 1
        if self.records > self.max_rows:
            raise AnswerTooLarge(f"the query returns more than {self.max_rows} rows")
        for index, value in enumerate(row):
            if value is not None and self.hints[index] is None:
                self._kinds[index].add(_kind(value))
            field = _field(render_value(value))
            self.size += len(field)
            self._fields.append(field)
        self._fields.append(bytes((TYPE_EOR,)))
        self.size += 1
        if self.size > self.max_bytes:
            raise AnswerTooLarge(f"the answer is larger than {self.max_bytes} bytes")

    def types(self) -> list[str]:
        """The header's type name per column."""
        return [
            hint if hint is not None else _name_for_kinds(kinds)
            for hint, kinds in zip(self.hints, self._kinds, strict=True)
        ]

    def getvalue(self) -> bytes:
        """The whole stream: header record, then the records."""
        header = b"".join(
            _field(name.encode()) + _field(kind.encode())
            for name, kind in zip(self.names, self.types(), strict=True)
        )
        return header + bytes((TYPE_EOR,)) + b"".join(self._fields)


def decode_rows(stream: bytes) -> tuple[list[tuple[str, str]], list[list[object]]]:
    """(header, records) of a row stream, read the way frontier-cpp's `getAnyData` reads it.

    Byte arrays come back as bytes, the fixed-width types as numbers, NULLs as None.
    """
    records: list[list[object]] = []
    record: list[object] = []
    pos = 0
    while pos < len(stream):
        tag = stream[pos]
        pos += 1
        if tag & BIT_NULL:
            record.append(None)
            continue
        if tag == TYPE_EOR:
            records.append(record)
            record = []
            continue
        if tag == TYPE_ARRAY_BYTE:
            (length,) = struct.unpack_from(">i", stream, pos)
            if length < 0 or pos + 4 + length > len(stream):
                raise ValueError(f"byte array of {length} bytes at {pos} overruns the stream")
            record.append(stream[pos + 4 : pos + 4 + length])
            pos += 4 + length
        elif tag in _FIXED:
            (value,) = struct.unpack_from(_FIXED[tag], stream, pos)
            record.append(value)
            pos += struct.calcsize(_FIXED[tag])
        else:
            raise ValueError(f"unknown type byte {tag} at {pos - 1}")
    if record:
        raise ValueError("the stream does not end with an end-of-record")
    if not records:
        raise ValueError("the stream has no header record")
    header = records[0]
    if len(header) % 2:
        raise ValueError("the header record has an odd number of fields")
    columns = [(_text(header[i]), _text(header[i + 1])) for i in range(0, len(header), 2)]
    return columns, records[1:]


_FIXED = {
    TYPE_BYTE: ">b",
    TYPE_INT4: ">i",
    TYPE_INT8: ">q",
    TYPE_FLOAT: ">f",
    TYPE_DOUBLE: ">d",
    TYPE_TIME: ">q",  # milliseconds since the epoch
}


def _text(value: object) -> str:
    if not isinstance(value, bytes):
        raise ValueError(f"header field {value!r} is not a byte array")
    return value.decode()
