"""Caching headers of Frontier answers, as the servlet sends them and squid uses them."""

from __future__ import annotations

from collections.abc import Iterator
from email.utils import formatdate
from typing import Any

import httpx
import pytest
from sqlalchemy import event
from support.asgi import AppClient
from support.fnkit import HEADERS, Fetch, command, frontier_url, parse_answer
from support.origin import FakeClock, MakeClient, admin

from origin.db import Engines, create_engines

IOVS = "SELECT tag_name, since, payload_hash FROM iovs ORDER BY tag_name, since, insertion_time"


def get(client: AppClient, url: str, **headers: str) -> httpx.Response:
    response = client.get(url, headers={**HEADERS, **headers})
    assert response.status_code in (200, 304), response.text
    if response.status_code == 200:
        assert response.headers["content-length"] == str(len(response.content))
    assert "transfer-encoding" not in response.headers
    return response


@pytest.fixture
def short_long(sample_sqlite: str, make_client: MakeClient, clock: FakeClock) -> AppClient:
    return make_client(sample_sqlite, clock=clock, ttl_short_seconds=120, ttl_long_seconds=7200)


@pytest.mark.parametrize(
    ("extra", "age"),
    [("", 7200), ("&ttl=long", 7200), ("&ttl=short", 120), ("&ttl=forever", 31_536_000)],
)
def test_the_ttl_class_chooses_max_age(short_long: AppClient, extra: str, age: int) -> None:
    response = get(short_long, frontier_url("SELECT count(*) FROM tags", extra=extra))
    assert response.headers["cache-control"] == f"max-age={age}, stale-if-error=1"


def test_the_last_short_or_forever_of_several_payloads_wins(short_long: AppClient) -> None:
    url = frontier_url("SELECT 1", "SELECT 2", extra="&ttl=short")
    assert get(short_long, url).headers["cache-control"].startswith("max-age=120")
    both = "/outpost/Frontier/" + "&".join(
        [command("SELECT 1", extra="&ttl=forever"), command("SELECT 2", extra="&ttl=short")]
    )
    assert get(short_long, both).headers["cache-control"].startswith("max-age=120")
    only_forever = "/outpost/Frontier/" + "&".join(
        [command("SELECT 1", extra="&ttl=forever"), command("SELECT 2")]
    )
    assert get(short_long, only_forever).headers["cache-control"].startswith("max-age=31536000")


@pytest.mark.parametrize(
    ("request_header", "expected"),
    [
        (None, "max-age=7200"),
        ("max-stale=1", "max-age=7200, stale-if-error=1"),
        ("max-stale=1,max-age=0", "max-age=7200, stale-if-error=1"),
        ("max-age=0, max-stale=3600", "max-age=7200, stale-if-error=3600"),
        ("max-stale", "max-age=7200"),
        ("no-cache", "max-age=7200"),
    ],
)
def test_max_stale_asks_for_stale_if_error(
    short_long: AppClient, request_header: str | None, expected: str
) -> None:
    headers = {"X-Frontier-Id": "tests"}
    if request_header is not None:
        headers["Cache-Control"] = request_header
    response = short_long.get(frontier_url("SELECT 1"), headers=headers)
    assert response.headers["cache-control"] == expected


def test_errors_are_cached_for_the_shorter_of_five_minutes_and_short(
    short_long: AppClient,
) -> None:
    response = get(short_long, frontier_url("SELECT * FROM sqlite_master"))
    assert response.headers["cache-control"] == "max-age=120, stale-if-error=1"
    assert response.headers["last-modified"] == "Thu, 01 Jan 1970 00:00:00 GMT"


def test_last_modified_is_the_newest_write_to_the_tables_read(fn: AppClient, fetch: Fetch) -> None:
    newest = max(
        int(fetch("SELECT max(insertion_time) FROM iovs")[0][0]),
        int(fetch("SELECT max(modified_at) FROM tags")[0][0]),
    )
    url = frontier_url("SELECT t.name, i.since FROM tags t JOIN iovs i ON i.tag_name = t.name")
    response = get(fn, url)
    assert response.headers["last-modified"] == formatdate(newest // 1_000_000, usegmt=True)
    assert response.headers["etag"].startswith('"')


def test_if_modified_since_the_last_modified_is_304(fn: AppClient) -> None:
    first = get(fn, frontier_url(IOVS))
    modified = first.headers["last-modified"]
    again = get(fn, frontier_url(IOVS), **{"If-Modified-Since": modified})
    assert again.status_code == 304 and again.content == b""
    assert again.headers["last-modified"] == modified
    assert again.headers["cache-control"] == first.headers["cache-control"]
    older = get(fn, frontier_url(IOVS), **{"If-Modified-Since": "Mon, 01 Jan 2001 00:00:00 GMT"})
    assert older.status_code == 200 and older.content == first.content


def test_if_none_match_the_etag_is_304(fn_sqlite: AppClient) -> None:
    etag = get(fn_sqlite, frontier_url(IOVS)).headers["etag"]
    assert get(fn_sqlite, frontier_url(IOVS), **{"If-None-Match": etag}).status_code == 304
    other = frontier_url(IOVS, encoding="BLOB")  # another URL: another entity
    assert get(fn_sqlite, other, **{"If-None-Match": etag}).status_code == 200


def test_head_revalidates_too(fn_sqlite: AppClient) -> None:
    modified = get(fn_sqlite, frontier_url(IOVS)).headers["last-modified"]
    head = fn_sqlite.head(frontier_url(IOVS), headers={**HEADERS, "If-Modified-Since": modified})
    assert head.status_code == 304


def test_last_modified_moves_after_a_write_to_a_table_read(
    sample_db: str, make_client: MakeClient, clock: FakeClock
) -> None:
    client = make_client(sample_db, clock=clock)
    url = frontier_url("SELECT count(*) FROM payloads")
    before = get(client, url)
    clock.advance(60)
    posted = client.post("/v1/payloads", content=b"new constants", headers=admin())
    assert posted.status_code == 201

    settling = get(client, url, **{"If-Modified-Since": before.headers["last-modified"]})
    assert settling.status_code == 200  # changed: the new row is counted
    assert (
        parse_answer(settling.content).payloads[0].rows
        != parse_answer(before.content).payloads[0].rows
    )
    assert "last-modified" not in settling.headers  # the write's second is not settled yet
    assert "etag" not in settling.headers

    clock.advance(20)
    after = get(client, url, **{"If-Modified-Since": before.headers["last-modified"]})
    assert after.status_code == 200
    assert after.headers["last-modified"] == formatdate(clock.now // 1_000_000 - 20, usegmt=True)
    assert after.headers["etag"] != before.headers["etag"]
    same = get(client, url, **{"If-Modified-Since": after.headers["last-modified"]})
    assert same.status_code == 304


def test_a_write_to_a_table_not_read_leaves_last_modified(
    fn_sqlite: AppClient, clock: FakeClock
) -> None:
    url = frontier_url("SELECT name, state FROM global_tags")
    before = get(fn_sqlite, url)
    clock.advance(60)
    assert fn_sqlite.post("/v1/payloads", content=b"unrelated", headers=admin()).status_code == 201
    clock.advance(60)
    again = get(fn_sqlite, url, **{"If-Modified-Since": before.headers["last-modified"]})
    assert again.status_code == 304


@pytest.fixture
def engines(sample_db: str) -> Iterator[Engines]:
    engines = create_engines(sample_db)
    yield engines
    engines.dispose()


def test_a_304_runs_only_the_version_query(
    engines: Engines, sample_db: str, make_client: MakeClient, clock: FakeClock
) -> None:
    client = make_client(sample_db, engines=engines, clock=clock)
    modified = get(client, frontier_url(IOVS)).headers["last-modified"]
    statements: list[str] = []

    def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            statements.append(statement)

    event.listen(engines.frontier, "before_cursor_execute", seen)
    assert get(client, frontier_url(IOVS), **{"If-Modified-Since": modified}).status_code == 304
    assert len(statements) == 1 and "max" in statements[0].lower()


def test_errors_and_global_errors_carry_content_length_too(fn_sqlite: AppClient) -> None:
    for url in (frontier_url("DELETE FROM tags"), "/outpost/Frontier/type=nonsense"):
        response = get(fn_sqlite, url)
        assert response.headers["content-length"] == str(len(response.content))
