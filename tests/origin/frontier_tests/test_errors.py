"""Refused and failed requests: answered in the envelope as frontier_client expects, DB untouched.

frontier_client (`response.c`) reads `<global_error msg=…>` as a protocol error, and a payload's
`<quality error="1" message=…>` as that payload's error code; either way it then retries with a
cache refresh and the next proxy or server. The servlet answers both with HTTP 200, cached for
a short while (5 minutes at most) with Last-Modified at the epoch.
"""

from __future__ import annotations

import base64
import hashlib
import zlib
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import event
from support.asgi import AppClient
from support.fnkit import HEADERS, Answer, frontier_url, parse_answer
from support.origin import MakeClient

from origin.db import create_engines

EPOCH = "Thu, 01 Jan 1970 00:00:00 GMT"
Counts = Callable[[], dict[str, int]]


def answer_of(response: httpx.Response) -> Answer:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/xml;charset=US-ASCII"
    assert response.headers["content-length"] == str(len(response.content))
    assert "transfer-encoding" not in response.headers
    return parse_answer(response.content)


def payload_error(client: AppClient, url: str) -> str:
    response = client.get(url, headers=HEADERS)
    answer = answer_of(response)
    assert answer.global_error is None
    payload = answer.payloads[-1]
    assert payload.error == 1 and payload.message is not None
    assert payload.records is None and payload.full_size == 0
    assert response.headers["last-modified"] == EPOCH
    assert response.headers["cache-control"] == "max-age=300, stale-if-error=1"
    assert "etag" not in response.headers
    assert payload.message.startswith("outpost ")
    return payload.message


def global_error(
    client: AppClient,
    url: str,
    headers: dict[str, str] | None = None,
    cache_control: str = "max-age=300",
) -> str:
    response = client.get(url, headers=HEADERS if headers is None else headers)
    answer = answer_of(response)
    assert answer.payloads == [] and answer.transaction_payloads is None
    assert answer.global_error is not None and answer.global_error.startswith("outpost Error: ")
    assert response.headers["cache-control"].startswith(cache_control)
    return answer.global_error


REFUSED = [
    ("SELEC name FROM tags", "syntax error"),
    ("SELECT name FROM tags WHERE", "syntax error"),
    ("INSERT INTO tags (name) VALUES ('x')", "only SELECT"),
    ("UPDATE tags SET state = 'open'", "only SELECT"),
    ("DELETE FROM iovs", "only SELECT"),
    ("DROP TABLE payloads", "only SELECT"),
    ("CREATE TABLE x (a int)", "only SELECT"),
    ("PRAGMA query_only = OFF", "PRAGMA"),
    ("ATTACH DATABASE '/tmp/evil.sqlite' AS evil", "ATTACH|syntax error"),
    ("SELECT 1; SELECT 2", "exactly one statement"),
    ("SELECT name FROM tags; DROP TABLE tags", "exactly one statement"),
    ("SELECT * INTO stolen FROM tags", "INTO"),
    ("SELECT * FROM tags FOR UPDATE", "LOCK"),
    ("SELECT * FROM sqlite_master", "'sqlite_master' is not readable"),
    ("SELECT * FROM pg_catalog.pg_tables", "pg_catalog.pg_tables"),
    ("SELECT * FROM pg_shadow", "'pg_shadow' is not readable"),
    ("SELECT * FROM information_schema.tables", "information_schema.tables"),
    ("SELECT name FROM tags WHERE name IN (SELECT name FROM sqlite_master)", "sqlite_master"),
    ("SELECT t.name FROM tags t JOIN pg_roles r ON r.rolname = t.name", "pg_roles"),
    ("WITH s AS (SELECT * FROM sqlite_master) SELECT * FROM s", "sqlite_master"),
    ("WITH pg_user AS (SELECT * FROM pg_user) SELECT * FROM pg_user", "pg_user"),
    (
        "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n FROM r) SELECT n FROM r",
        "RECURSIVE",
    ),
    ("SELECT * FROM (WITH t AS (SELECT 1) SELECT * FROM t) x", "WITH is only allowed"),
    ("SELECT load_extension('/tmp/evil.so')", "LOAD_EXTENSION"),
    ("SELECT pg_read_file('/etc/passwd')", "PG_READ_FILE"),
    ("SELECT pg_sleep(100)", "PG_SLEEP"),
    ("SELECT * FROM generate_series(1, 1000000000)", "not allowed"),
    ("SELECT name FROM tags WHERE name = ?", "1 bind markers but 0 values"),
]


def test_refused_sql_is_a_payload_error_and_changes_nothing(
    fn: AppClient, counts: Callable[[], dict[str, int]]
) -> None:
    before = counts()
    for sql, why in REFUSED:  # one database for all: a copy per case would be slow
        message = payload_error(fn, frontier_url(sql))
        assert any(reason in message for reason in why.split("|")), (sql, message)
    assert counts() == before


def test_a_refusal_is_logged(fn_sqlite: AppClient, caplog: pytest.LogCaptureFixture) -> None:
    payload_error(fn_sqlite, frontier_url("DELETE FROM iovs"))
    assert any("refused" in r.getMessage() and "fnkit" in r.getMessage() for r in caplog.records)


def test_a_database_error_is_the_payloads_error(fn: AppClient) -> None:
    message = payload_error(fn, frontier_url("SELECT no_such_column FROM tags"))
    assert "no_such_column" in message


def test_more_rows_than_the_cap_is_an_error(sample_db: str, make_client: MakeClient) -> None:
    client = make_client(sample_db, query_max_rows=5)
    message = payload_error(client, frontier_url("SELECT id FROM iovs"))
    assert "more than 5 rows" in message
    ok = client.get(frontier_url("SELECT id FROM iovs ORDER BY id LIMIT 5"), headers=HEADERS)
    assert len(answer_of(ok).payloads[0].rows) == 5


def test_a_larger_answer_than_allowed_is_an_error(
    sample_sqlite: str, make_client: MakeClient
) -> None:
    client = make_client(sample_sqlite, frontier_max_bytes=100_000)
    message = payload_error(client, frontier_url("SELECT data FROM payloads"))
    assert "larger than 100000 bytes" in message


@pytest.mark.parametrize(
    ("encoding", "why"),
    [
        ("XML", "Unsupported encoder: XML"),
        ("BLOBgzip", "Unrecognized BLOB sub-encoding gzip"),
        ("BLOBzipX", "BLOB zip level X not an integer"),
        ("BLOBzip12", "BLOB zip level less than 0 or greater than 9"),
    ],
)
def test_an_unknown_encoding_is_a_payload_error(
    fn_sqlite: AppClient, encoding: str, why: str
) -> None:
    message = payload_error(fn_sqlite, frontier_url("SELECT 1", encoding=encoding))
    assert why in message


def test_an_error_stops_the_payloads_after_it(fn_sqlite: AppClient) -> None:
    url = frontier_url("SELECT count(*) FROM tags", "DELETE FROM tags", "SELECT 1")
    answer = answer_of(fn_sqlite.get(url, headers=HEADERS))
    assert answer.transaction_payloads == 3
    assert [p.error for p in answer.payloads] == [0, 1]
    assert answer.payloads[0].rows == [[b"30"]]


def test_an_empty_answer_cached_forever_is_an_error(fn_sqlite: AppClient) -> None:
    url = frontier_url("SELECT name FROM tags WHERE name = 'none'", extra="&ttl=forever")
    assert "Empty result from query not allowed" in payload_error(fn_sqlite, url)


def _p1(raw: bytes) -> str:
    return base64.b64encode(raw).decode().replace("+", ".").replace("/", "-").replace("=", "_")


@pytest.mark.parametrize(
    ("p1", "why"),
    [
        ("!!!!", "not base64"),
        ("eJx", "truncated"),
        (_p1(b"select 1 from tags"), "not a zlib stream"),
        (_p1(zlib.compress(b"SELECT 1")[:-3]), "truncated"),
        (_p1(zlib.compress(b"\xff\xfe select")), "not UTF-8"),
    ],
)
def test_a_p1_that_is_not_zlib_in_base64_is_a_global_error(
    fn_sqlite: AppClient, p1: str, why: str
) -> None:
    url = f"/outpost/Frontier/type=frontier_request:1:DEFAULT&encoding=BLOB&p1={p1}"
    assert why in global_error(fn_sqlite, url)


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("/outpost/Frontier", "no query"),
        ("/outpost/Frontier/", "no query"),
        ("/outpost/Frontier/type=frontier_request:1:DEFAULT&encoding=BLOB", "missing parameter p1"),
        ("/outpost/Frontier/encoding=BLOB&p1=eJwDAAAAAAE_", "Unsupported request type [encoding]"),
        ("/outpost/Frontier/type=frontier_request:1:DEFAULT&p1=x", "Unexpected parameter [p1=x]"),
        (
            "/outpost/Frontier/type=frontier_file:1:DEFAULT&encoding=BLOB&p1=x",
            "Unsupported command",
        ),
        ("/outpost/Frontier?type=frontier_request:2&encoding=BLOB&p1=x", "Unsupported command"),
    ],
)
def test_a_malformed_request_is_a_global_error(fn_sqlite: AppClient, url: str, why: str) -> None:
    assert why in global_error(fn_sqlite, url)


def test_without_x_frontier_id_the_request_is_served_and_logged_as_anonymous(
    fn_sqlite: AppClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="outpost.origin.frontier")
    response = fn_sqlite.get(frontier_url("SELECT count(*) FROM tags"))
    assert answer_of(response).payloads[0].rows == [[b"30"]]
    assert any("anonymous" in r.getMessage() for r in caplog.records)


def test_frontier_require_id_refuses_requests_without_it_as_the_servlet_does(
    sample_sqlite: str, make_client: MakeClient
) -> None:
    client = make_client(sample_sqlite, frontier_require_id=True)
    url = frontier_url("SELECT count(*) FROM tags")
    # about this request's own header: never stored for the next client (no-store)
    missing = global_error(client, url, headers={}, cache_control="no-store")
    assert "X-frontier-id header missing" in missing
    assert answer_of(client.get(url, headers=HEADERS)).payloads[0].error == 0


def test_messages_are_escaped_in_the_envelope(fn_sqlite: AppClient) -> None:
    message = payload_error(fn_sqlite, frontier_url("SELECT * FROM \"<evil & 'co'>\""))
    assert "<evil & 'co'>" in message  # parsed back from &lt;evil &amp; &apos;co&apos;&gt;


def test_a_url_longer_than_the_frontier_limit_is_414(
    sample_sqlite: str, make_client: MakeClient
) -> None:
    client = make_client(sample_sqlite, frontier_max_url_bytes=16 * 1024)

    def names(count: int) -> str:  # hex digests: they do not compress away
        values = ",".join(f"'{hashlib.sha256(str(i).encode()).hexdigest()}'" for i in range(count))
        return f"SELECT name FROM tags WHERE name IN ({values})"  # noqa: S608 (sent, not run)

    too_long, fits = frontier_url(names(500)), frontier_url(names(250))
    assert len(too_long) > 16 * 1024
    assert client.get(too_long, headers=HEADERS).status_code == 414
    assert 8 * 1024 < len(fits) <= 16 * 1024  # over the origin's 8 KiB, under Frontier's limit
    assert answer_of(client.get(fits, headers=HEADERS)).payloads[0].error == 0


def test_other_methods_are_not_allowed(fn_sqlite: AppClient) -> None:
    response = fn_sqlite.post(frontier_url("SELECT 1"), headers=HEADERS)
    assert response.status_code == 405


def test_a_refused_statement_never_reaches_the_database(
    sample_db: str, make_client: MakeClient
) -> None:
    engines = create_engines(sample_db)
    try:
        client = make_client(sample_db, engines=engines)
        statements: list[str] = []

        def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            statements.append(statement)

        event.listen(engines.frontier, "before_cursor_execute", seen)
        payload_error(client, frontier_url("SELECT * FROM tags; DROP TABLE tags"))
        payload_error(client, frontier_url("SELECT pg_read_file('/etc/passwd')"))
        assert statements == []
    finally:
        engines.dispose()


def test_a_statement_over_the_timeout_is_cancelled(sample_db: str, make_client: MakeClient) -> None:
    client = make_client(sample_db, statement_timeout_ms=100)
    sql = "SELECT count(*) FROM iovs a, iovs b, iovs c WHERE a.since + b.since > c.since"
    message = payload_error(client, frontier_url(sql))
    assert "canceling statement due to statement timeout" in message
    ok = client.get(frontier_url("SELECT count(*) FROM tags"), headers=HEADERS)
    assert answer_of(ok).payloads[0].rows == [[b"30"]]  # the connection is fine afterwards
