"""Caching headers: TTL classes, validators, conditional GETs and gzip, as caches need them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import event
from support.asgi import AppClient
from support.origin import FakeClock, MakeClient, admin

from origin.db import Engines, create_engines
from origin.sample import HLT_GLOBAL_TAG, PROMPT_GLOBAL_TAG
from outpost.urls import format_time

RESOLVE = f"/v1/resolve/{HLT_GLOBAL_TAG}?run=500"
NOW = 1_800_000_000_000_000  # 2027-01-15, after every row of the sample


@pytest.fixture
def engines(sample_db: str) -> Iterator[Engines]:
    engines = create_engines(sample_db)
    yield engines
    engines.dispose()


class StatementCounter:
    def __init__(self, engines: Engines) -> None:
        self.statements: list[str] = []
        event.listen(engines.reader, "before_cursor_execute", self._seen)

    def _seen(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith(("SELECT", "WITH")):
            self.statements.append(statement)


def a_payload(client: AppClient) -> str:
    return str(client.get(RESOLVE).json()["records"][0]["payload"])


def test_payload_is_cached_forever_and_immutable(client: AppClient) -> None:
    answer = client.get(f"/v1/payloads/{a_payload(client)}")
    assert answer.headers["cache-control"] == "public, max-age=31536000, immutable"


def test_answers_on_an_open_global_tag_are_short_lived(
    sample_db: str, make_client: MakeClient
) -> None:
    client = make_client(sample_db, ttl_short_seconds=120)
    assert client.get(RESOLVE).headers["cache-control"] == "public, max-age=120"
    assert client.get("/v1/globaltags").headers["cache-control"] == "public, max-age=120"


def test_answers_that_can_no_longer_change_are_long_lived(
    sample_db: str, make_client: MakeClient
) -> None:
    client = make_client(sample_db, ttl_long_seconds=7200)
    locked_tag = client.get(f"/v1/globaltags/{PROMPT_GLOBAL_TAG}").json()["map"][0]["tag"]
    for url in (
        f"/v1/resolve/{PROMPT_GLOBAL_TAG}?run=500",
        f"/v1/globaltags/{PROMPT_GLOBAL_TAG}",
        f"/v1/tags/{locked_tag}",
        f"/v1/tags/{locked_tag}/iovs",
    ):
        assert client.get(url).headers["cache-control"] == "public, max-age=7200", url


def test_snapshot_in_the_past_is_immutable_but_not_one_still_settling(
    sample_db: str, make_client: MakeClient
) -> None:
    clock = FakeClock(NOW)
    client = make_client(sample_db, clock=clock, snapshot_settle_seconds=10)
    past = client.get(f"{RESOLVE}&snapshot={format_time(NOW - 11_000_000)}")
    assert past.headers["cache-control"] == "public, max-age=31536000, immutable"
    settling = client.get(f"{RESOLVE}&snapshot={format_time(NOW - 5_000_000)}")
    assert settling.headers["cache-control"].endswith(f"max-age={300}")


def test_if_none_match_answers_304_without_a_body(client: AppClient) -> None:
    first = client.get(RESOLVE)
    again = client.get(RESOLVE, headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["etag"] == first.headers["etag"]
    assert again.headers["cache-control"] == first.headers["cache-control"]


def test_payload_revalidation_uses_the_hash_as_etag(client: AppClient) -> None:
    digest = a_payload(client)
    again = client.get(f"/v1/payloads/{digest}", headers={"If-None-Match": f'"{digest}"'})
    assert again.status_code == 304 and again.content == b""


def test_if_modified_since_answers_304_only_when_nothing_changed_since(client: AppClient) -> None:
    modified = client.get(RESOLVE).headers["last-modified"]
    assert client.get(RESOLVE, headers={"If-Modified-Since": modified}).status_code == 304
    long_ago = "Mon, 01 Jan 2001 00:00:00 GMT"
    assert client.get(RESOLVE, headers={"If-Modified-Since": long_ago}).status_code == 200


def test_conditional_get_runs_only_the_version_query(
    engines: Engines, sample_db: str, make_client: MakeClient
) -> None:
    client = make_client(sample_db, engines=engines)
    etag = client.get(RESOLVE).headers["etag"]
    counter = StatementCounter(engines)
    assert client.get(RESOLVE, headers={"If-None-Match": etag}).status_code == 304
    assert len(counter.statements) == 1
    assert client.get(RESOLVE).status_code == 200
    assert len(counter.statements) == 3


def test_etag_changes_when_a_mapped_tag_gets_an_iov_and_not_otherwise(
    sample_db: str, make_client: MakeClient
) -> None:
    client = make_client(sample_db)
    before = client.get(RESOLVE).headers["etag"]
    digest = client.post("/v1/payloads", content=b"new constants", headers=admin()).json()["hash"]
    client.post(
        "/v1/tags",
        json={"name": "Unrelated_v1", "time_type": "run", "payload_type": "X"},
        headers=admin(),
    )
    client.post(
        "/v1/tags/Unrelated_v1/iovs",
        json={"iovs": [{"since": 1, "payload": digest}]},
        headers=admin(),
    )
    assert client.get(RESOLVE).headers["etag"] == before
    mapped = client.get(f"/v1/globaltags/{HLT_GLOBAL_TAG}").json()["map"][0]["tag"]
    posted = client.post(
        f"/v1/tags/{mapped}/iovs",
        json={"iovs": [{"since": 2_000_000_000, "payload": digest}]},
        headers=admin(),
    )
    assert posted.status_code == 201, posted.text
    assert client.get(RESOLVE).headers["etag"] != before


def test_large_json_is_gzipped_when_accepted(client: AppClient) -> None:
    plain = client.get(RESOLVE, headers={"Accept-Encoding": "identity"})
    zipped = client.get(RESOLVE, headers={"Accept-Encoding": "gzip"})
    assert "content-encoding" not in plain.headers
    assert zipped.headers["content-encoding"] == "gzip"
    assert zipped.headers["vary"] == plain.headers["vary"] == "Accept-Encoding"
    assert zipped.content == plain.content  # httpx decoded it
    assert zipped.headers["etag"] != plain.headers["etag"]
    assert int(zipped.headers["content-length"]) < len(plain.content)


def test_gzip_variant_is_the_same_on_every_request(client: AppClient) -> None:
    answers = [client.get(RESOLVE, headers={"Accept-Encoding": "gzip"}) for _ in range(2)]
    assert answers[0].headers["etag"] == answers[1].headers["etag"]
    assert answers[0].headers["content-length"] == answers[1].headers["content-length"]


def test_small_json_is_not_gzipped(client: AppClient) -> None:
    answer = client.get("/v1/globaltags", headers={"Accept-Encoding": "gzip"})
    assert len(answer.content) < 1024
    assert "content-encoding" not in answer.headers


def test_gzip_etag_revalidates_against_either_variant(client: AppClient) -> None:
    zipped_tag = client.get(RESOLVE, headers={"Accept-Encoding": "gzip"}).headers["etag"]
    again = client.get(RESOLVE, headers={"If-None-Match": zipped_tag, "Accept-Encoding": "gzip"})
    assert again.status_code == 304


def test_errors_are_never_cached(client: AppClient) -> None:
    answer = client.get("/v1/resolve/NO_SUCH_GT?run=1")
    assert answer.status_code == 404
    assert answer.headers["cache-control"] == "no-store"
