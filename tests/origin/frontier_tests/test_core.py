"""The pure core of the Frontier protocol, against the servlet's and the client's rules."""

from __future__ import annotations

import ast
import base64
import hashlib
import zlib
from datetime import UTC, datetime
from email.utils import formatdate
from pathlib import Path

import pytest
from support.fnkit import encode_query

from origin.frontier.caching import cache_control, not_modified, ttl_of, validators
from origin.frontier.codec import MAX_SQL_BYTES, decode_p1, encode_p1, split_binds
from origin.frontier.envelope import (
    EncodingError,
    PayloadAnswer,
    base64_lines,
    pack,
    parse_encoding,
    render,
    render_global_error,
    xml_attribute,
)
from origin.frontier.params import FrontierError, is_frontier_path, parse_commands
from origin.frontier.rows import AnswerTooLarge, RowStream, decode_rows, type_name_for_oid
from origin.query.ttl import TTLClass

ROOT = Path(__file__).resolve().parents[3]
SECOND = 1_000_000

# --- URL parameters --------------------------------------------------------------------------


def test_commands_split_at_each_type_and_keep_their_parameters() -> None:
    raw = (
        "type=frontier_request:1:DEFAULT&encoding=BLOBzip5&p1=eJx&ttl=short"
        "&type=frontier_request:1&encoding=BLOB&p1=abc&freshkey=k%3D1"
    )
    first, second = parse_commands(raw)
    assert (first.obj_name, first.obj_version, first.method) == ("frontier_request", "1", "DEFAULT")
    assert first.encoding == "BLOBzip5" and first.params == (("p1", "eJx"), ("ttl", "short"))
    assert second.method == "DEFAULT" and second.param("freshkey") == "k=1"
    assert second.param("ttl") is None


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("", "no query"),
        ("&&", "no query"),
        ("encoding=BLOB&type=x:1", "Unsupported request type [encoding]"),
        ("type=frontier_request:1:DEFAULT", "prematurely"),
        ("type=frontier_request:1:DEFAULT&p1=x", "Unexpected parameter [p1=x]"),
        ("type=frontier_request:1&encoding=BLOB&p1", "malformed parameter"),
    ],
)
def test_malformed_parameters_are_frontier_errors(raw: str, message: str) -> None:
    with pytest.raises(FrontierError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_commands(raw)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/outpost/Frontier", True),
        ("/FrontierProd/Frontier/type=x", True),
        ("/Frontier", False),
        ("//Frontier/x", False),
        ("/v1/resolve/Frontier", False),
        ("/outpost/frontier", False),
    ],
)
def test_frontier_paths_are_under_any_servlet_name(path: str, expected: bool) -> None:
    assert is_frontier_path(path) is expected


# --- p1 ----------------------------------------------------------------------------------------


def test_p1_round_trips_and_matches_what_the_client_sends() -> None:
    sql = "SELECT name FROM tags WHERE name = 'Ecal é'"
    assert encode_p1(sql) == encode_query(sql)
    assert decode_p1(encode_query(sql)) == sql
    assert set(encode_p1(sql)) <= set(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.-_"
    )


def test_p1_padding_is_optional_and_the_old_alphabet_is_read() -> None:
    sql = "SELECT 1"
    standard = base64.b64encode(zlib.compress(sql.encode(), 9)).decode()
    assert decode_p1(standard) == sql  # fnget.py's first versions sent + / = and a newline
    assert decode_p1(standard.rstrip("=") + "\n") == sql
    assert decode_p1(encode_p1(sql).rstrip("_")) == sql


def test_p1_that_inflates_beyond_the_limit_is_refused() -> None:
    bomb = encode_p1("SELECT 1 " + " " * (MAX_SQL_BYTES + 10))
    with pytest.raises(FrontierError, match="inflates to more than"):
        decode_p1(bomb)


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("SELECT ? FROM t:1", ("SELECT ? FROM t", ("1",))),
        ("SELECT '10:30' FROM t", ("SELECT '10:30' FROM t", ())),  # no ?: no split
        ("SELECT 1 FROM t WHERE a = '?'", ("SELECT 1 FROM t WHERE a = '?'", ())),  # no :
        ("SELECT ? , ? , ?:a::c", ("SELECT ? , ? , ?", ("a", "", "c"))),
        ("SELECT ?:a::", ("SELECT ?", ("a",))),  # Java's split drops trailing empties
    ],
)
def test_bind_values_split_as_the_servlet_splits_them(
    sql: str, expected: tuple[str, tuple[str, ...]]
) -> None:
    assert split_binds(sql) == expected


# --- the envelope -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("encoding", "level"),
    [("BLOB", None), ("BLOBzip", 5), ("BLOBzip9", 9), ("BLOBzip0", 0), ("BLOBzip1", 1)],
)
def test_encodings(encoding: str, level: int | None) -> None:
    assert parse_encoding(encoding) == level


@pytest.mark.parametrize("encoding", ["XML", "blob", "BLOBz", "BLOBzip10", "BLOBzip-1", "BLOBzipx"])
def test_unknown_encodings(encoding: str) -> None:
    with pytest.raises(EncodingError):
        parse_encoding(encoding)


def test_base64_lines_break_after_every_76_characters() -> None:
    assert base64_lines(b"") == ""
    assert base64_lines(b"a" * 57) == base64.b64encode(b"a" * 57).decode() + "\n"
    two = base64_lines(b"a" * 58)
    assert two.split("\n") == [base64.b64encode(b"a" * 57).decode(), "YQ=="]
    long = base64_lines(bytes(range(256)) * 10)
    assert all(len(line) == 76 for line in long.split("\n")[:-1])
    assert base64.b64decode(long) == bytes(range(256)) * 10


def test_md5_is_over_the_bytes_the_client_decodes_and_full_size_over_the_stream() -> None:
    stream = b"\x06\x00\x00\x00\x03abc\x07" * 50
    zipped = pack(stream, 5)
    assert zipped.full_size == len(stream)
    assert zipped.md5 == hashlib.md5(base64.b64decode(zipped.data)).hexdigest()
    assert zlib.decompress(base64.b64decode(zipped.data)) == stream
    plain = pack(stream, None)
    assert plain.md5 == hashlib.md5(stream).hexdigest()
    assert zlib.decompress(base64.b64decode(pack(stream, 0).data)) == stream  # BLOBzip0


def test_a_payload_is_written_byte_for_byte_as_the_servlet_writes_it() -> None:
    packed = pack(b"\x07", None)
    body = render([PayloadAnswer("frontier_request", "1", "BLOB", packed, 0)], 1)
    assert body == (
        b'<?xml version="1.0" encoding="US-ASCII"?>\n'
        b'<!DOCTYPE frontier SYSTEM "http://frontier.fnal.gov/frontier.dtd">\n'
        b'<frontier version="3.42" xmlversion="1.0">\n'
        b' <transaction payloads="1">\n'
        b'  <payload type="frontier_request" version="1" encoding="BLOB">\n'
        b"   <data>Bw==</data>\n"
        b'   <quality error="0" md5="' + hashlib.md5(b"\x07").hexdigest().encode() + b'"'
        b' records="0" full_size="1"/>\n'
        b"  </payload>\n"
        b" </transaction>\n"
        b"</frontier>\n"
    )


def test_a_payload_error_has_a_message_and_no_records() -> None:
    body = render([PayloadAnswer("frontier_request", "1", "XML", error="Unsupported encoder")], 2)
    assert b' <transaction payloads="2">\n' in body
    assert b"   <data></data>\n" in body
    assert b'   <quality error="1" message="outpost Unsupported encoder" full_size="0"/>\n' in body


def test_a_global_error_has_no_transaction() -> None:
    assert render_global_error('no "query"') == (
        b'<?xml version="1.0" encoding="US-ASCII"?>\n'
        b'<!DOCTYPE frontier SYSTEM "http://frontier.fnal.gov/frontier.dtd">\n'
        b'<frontier version="3.42" xmlversion="1.0">\n'
        b"\n"
        b'  <global_error msg="outpost Error: no &quot;query&quot;"/>\n'
        b"</frontier>\n"
    )


def test_attributes_are_escaped_and_ascii() -> None:
    assert xml_attribute("<a & 'b'>") == "&lt;a &amp; &apos;b&apos;&gt;"
    assert xml_attribute("é\x00\x1b") == "&#233;??"


# --- the typed row stream ----------------------------------------------------------------------


def test_rows_round_trip_through_the_stream() -> None:
    stream = RowStream(["n", "x", "s", "b", "z"], [], max_rows=10, max_bytes=10_000)
    stream.add((1, 1.5, "é", b"\x00\x07", None))
    stream.add((-(2**63), float("inf"), "", b"", None))
    header, records = decode_rows(stream.getvalue())
    assert header == [
        ("n", "NUMBER(20)"),
        ("x", "BINARY_DOUBLE"),
        ("s", "VARCHAR2"),
        ("b", "BLOB"),
        ("z", "VARCHAR2"),
    ]
    assert records == [
        [b"1", b"1.5", "é".encode(), b"\x00\x07", None],
        [str(-(2**63)).encode(), b"inf", b"", b"", None],
    ]
    assert stream.records == 2


def test_the_stream_is_type_byte_length_value_and_end_of_record() -> None:
    stream = RowStream(["a"], ["NUMBER(10)"], max_rows=10, max_bytes=10_000)
    stream.add((7,))
    stream.add((None,))
    assert stream.getvalue() == (
        b"\x06\x00\x00\x00\x01a\x06\x00\x00\x00\x0aNUMBER(10)\x07\x06\x00\x00\x00\x017\x07\x86\x07"
    )


def test_the_caps_stop_the_stream() -> None:
    rows = RowStream(["a"], [], max_rows=2, max_bytes=10_000)
    rows.add((1,))
    rows.add((2,))
    with pytest.raises(AnswerTooLarge, match="more than 2 rows"):
        rows.add((3,))
    size = RowStream(["a"], [], max_rows=10, max_bytes=100)
    with pytest.raises(AnswerTooLarge, match="larger than 100 bytes"):
        size.add((b"x" * 200,))


def test_postgresql_types_map_to_the_oracle_names() -> None:
    assert [type_name_for_oid(o) for o in (20, 23, 21, 16, 701, 700, 1700, 25, 1043, 17)] == [
        "NUMBER(20)",
        "NUMBER(10)",
        "NUMBER(5)",
        "NUMBER(1)",
        "BINARY_DOUBLE",
        "BINARY_FLOAT",
        "NUMBER",
        "VARCHAR2",
        "VARCHAR2",
        "BLOB",
    ]
    assert type_name_for_oid(3802) is None  # jsonb: from the values


# --- caching ------------------------------------------------------------------------------------


def test_ttl_of_payloads() -> None:
    assert ttl_of([]) == ttl_of([None]) == ttl_of(["long"]) == TTLClass.LONG
    assert ttl_of(["short", None]) == TTLClass.SHORT
    assert ttl_of(["forever", "short"]) == TTLClass.SHORT
    assert ttl_of(["short", "forever", "long"]) == TTLClass.FOREVER


def test_stale_if_error_follows_max_stale() -> None:
    assert cache_control(60, None) == "max-age=60"
    assert cache_control(60, "max-stale=1") == "max-age=60, stale-if-error=1"
    assert cache_control(60, 'max-stale="7", max-age=0') == "max-age=60, stale-if-error=7"
    assert cache_control(60, "max-stale=abc") == "max-age=60"


def test_validators_wait_for_the_versions_second_and_the_settle_time() -> None:
    version = 1_700_000_000 * SECOND + 300_000  # .3 s into its second
    after = 1_700_000_001 * SECOND + 10 * SECOND  # the next second, plus 10 s
    assert validators(version, now=after - 1, settle_seconds=10, canonical="x") is None
    found = validators(version, now=after, settle_seconds=10, canonical="x")
    assert found is not None
    assert found.last_modified == formatdate(1_700_000_000, usegmt=True)
    assert validators(None, now=after, settle_seconds=10, canonical="x") is None
    other = validators(version + 1, now=after, settle_seconds=10, canonical="x")
    assert other is not None and other.etag != found.etag
    assert other.last_modified == found.last_modified


def test_304_only_for_exactly_our_last_modified_or_etag() -> None:
    found = validators(
        1_700_000_000 * SECOND, now=1_800_000_000 * SECOND, settle_seconds=10, canonical="x"
    )
    assert found is not None
    assert not_modified(found, None, found.last_modified)
    asctime = datetime.fromtimestamp(1_700_000_000, UTC).strftime("%a %b %d %H:%M:%S %Y")
    assert not_modified(found, None, asctime)
    assert not not_modified(found, None, formatdate(1_700_000_001, usegmt=True))
    assert not not_modified(found, None, formatdate(1_600_000_000, usegmt=True))
    assert not not_modified(found, None, "yesterday")
    assert not_modified(found, found.etag, None)
    assert not not_modified(found, '"other"', found.last_modified)  # If-None-Match wins


# --- the core stays pure -----------------------------------------------------------------------

PURE = ("params", "codec", "rows", "envelope", "caching", "guard")
IO = {"socket", "asyncio", "anyio", "httpx", "starlette", "uvicorn", "psycopg", "sqlite3", "time"}


@pytest.mark.parametrize("module", PURE)
def test_the_core_modules_do_no_io(module: str) -> None:
    tree = ast.parse((ROOT / "origin" / "frontier" / f"{module}.py").read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
    for name in imported:
        assert name.split(".")[0] not in IO, f"{module} imports {name}"
        assert not name.startswith(("sqlalchemy", "origin.db", "origin.app")), name
        if name.startswith("origin."):
            assert name.startswith(("origin.frontier.", "origin.query.")), name


def test_p1_of_the_frontier_client_usage_page_decodes_to_its_sql() -> None:
    # The example request of fermitools/frontier docs/FrontierClientUsage.html (fnget.py's
    # output there): its p1 and the SQL the page says it carries.
    p1 = (
        "eNoly8EKwjAMANBfyW03-8DD7KIW2qSkVfEUytbBoDJw3f878PgOL6JDk8Cwe3hS6j3CVdiD8VEN06CHKFmUU2B2y"
        "qK.D8HSTf8lwuuOgvBEiZbp3OW9rZ-cllGnMue9Np3Xr.KYayhT2VquWwcsAwpc3hA42nS8H.7JKqY_"
    )
    assert decode_p1(p1) == (
        "SELECT COLUMN_NAME FROM CMS_COND_FRONTIER.POOL_OR_MAPPING_COLUMNS WHERE "
        "VERSION='automatic_default_for_EcalPedestals' ORDER BY POSITION"
    )
