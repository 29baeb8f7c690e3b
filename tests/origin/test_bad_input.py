"""Bad input gets a 4xx with a JSON body saying what was wrong, never a 500, never a change."""

from __future__ import annotations

import string

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.asgi import AppClient
from support.origin import admin

from origin.sample import HLT_GLOBAL_TAG

GT = HLT_GLOBAL_TAG


@pytest.mark.parametrize(
    ("url", "status"),
    [
        ("/v1/nothing", 404),
        ("/", 404),
        ("/v1/globaltags/NO_SUCH_GT", 404),
        ("/v1/tags/NoSuchTag", 404),
        ("/v1/tags/NoSuchTag/iovs", 404),
        (f"/v1/payloads/{'0' * 64}", 404),
        ("/v1/query/secrets", 404),
        (f"/v1/resolve/{GT}", 400),
        (f"/v1/resolve/{GT}?run=abc", 400),
        (f"/v1/resolve/{GT}?run=-1", 400),
        (f"/v1/resolve/{GT}?run=99999999999999999999", 400),
        (f"/v1/resolve/{GT}?run=1&colour=blue", 400),
        (f"/v1/resolve/{GT}?run=1&run=2", 400),
        (f"/v1/resolve/{GT}?run=1&snapshot=yesterday", 400),
        ("/v1/tags/x/iovs?since=5&until=5", 400),
        ("/v1/payloads/not-a-hash", 400),
        ("/v1/globaltags/bad;name", 400),
        ("/v1/query/iovs?select=since;drop", 400),
        ("/v1/query/iovs?nosuchcolumn=eq.1", 400),
        ("/v1/query/iovs?since=like.1", 400),
        ("/v1/query/iovs?since=eq.one", 400),
        ("/v1/query/iovs?since=gt.%EF%BC%91", 400),  # a full-width 1: int() takes it
        ("/v1/query/iovs?since=gt.1_000", 400),
        ("/v1/query/iovs?since=gt.%201", 400),
        ("/v1/query/iovs?channel=eq.01", 400),
        ("/v1/query/iovs?since=in.(1,%2B1)", 400),
        ("/v1/query/iovs?since=in.1,2", 400),
        ("/v1/query/iovs?limit=0", 400),
        ("/v1/query/iovs?limit=10001", 400),
        ("/v1/query/iovs?order=since.sideways", 400),
        ("/v1/query/iovs?tag_name=eq.%FF", 400),
        ("/v1/query/iovs?nofield", 400),
    ],
)
def test_bad_read_gets_a_clear_json_error(client: AppClient, url: str, status: int) -> None:
    answer = client.get(url)
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert set(body) == {"error", "detail", "accepted"}
    assert body["detail"]


def test_oversized_url_gets_414(client: AppClient) -> None:
    answer = client.get(f"/v1/resolve/{GT}?run=1&x={'a' * 9000}")
    assert answer.status_code == 414
    assert "8192" in answer.json()["accepted"]


def test_wrong_method_gets_405_with_allow(client: AppClient) -> None:
    answer = client.request("DELETE", f"/v1/globaltags/{GT}")
    assert answer.status_code == 405
    assert "PUT" in answer.headers["allow"]
    assert answer.json()["error"] == "method not allowed"


def test_post_to_a_read_route_gets_405(client: AppClient) -> None:
    answer = client.post(f"/v1/resolve/{GT}?run=1", headers=admin())
    assert answer.status_code == 405
    assert set(answer.json()["accepted"]) == {"GET", "HEAD"}


SAFE = string.ascii_letters + string.digits + "-._~%+=&,()'\";:/?#*!@$ "
segments = st.sampled_from(
    ["v1", "globaltags", "tags", "iovs", "resolve", "payloads", "query", "iovs", GT, "x", ""]
)
text = st.text(alphabet=SAFE, max_size=40)
keys = (
    st.sampled_from(
        [
            "run",
            "lumi",
            "time",
            "snapshot",
            "since",
            "until",
            "channel",
            "select",
            "order",
            "limit",
            "tag_name",
            "size",
            "hash",
            "state",
        ]
    )
    | text
)
values = (
    st.sampled_from(
        [
            "1",
            "0",
            "-1",
            "1e3",
            "eq.1",
            "in.(1,2)",
            "is.null",
            "ge.x",
            "2026-01-01T00:00:00Z",
            "9" * 30,
            "since.desc",
            "name,state",
            "eq.'; DROP TABLE tags;--",
        ]
    )
    | text
)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    path=st.lists(segments | text, min_size=0, max_size=5),
    params=st.lists(st.tuples(keys, values), max_size=6),
)
def test_random_read_urls_never_get_a_server_error(
    client: AppClient, path: list[str], params: list[tuple[str, str]]
) -> None:
    url = "/" + "/".join(path)
    query = "&".join(f"{k}={v}" for k, v in params)
    path_part = url.replace("?", "%3F").replace("#", "%23")
    query_part = "?" + query.replace("#", "%23") if query else ""
    answer = client.get(f"http://origin.test{path_part}{query_part}")
    assert answer.status_code < 500, (url, query, answer.text)
    if answer.status_code >= 400:
        assert set(answer.json()) == {"error", "detail", "accepted"}


@pytest.mark.parametrize(
    "body",
    [
        {"iovs": [{"since": "9" * 5_000_000, "payload": "ab" * 32}]},
        {"iovs": [{"since": 1, "payload": "ab" * 32, "x" * 5_000_000: 1}]},
        {"name": "T", "time_type": "run", "payload_type": "P", "description": ["d" * 5_000_000]},
    ],
    ids=["5MB-since", "5MB-field-name", "5MB-description"],
)
def test_a_huge_rejected_value_is_not_echoed_back_whole(
    client: AppClient, body: dict[str, object]
) -> None:
    url = "/v1/tags" if "name" in body else f"/v1/tags/{GT}/iovs"
    answer = client.post(url, content=orjson.dumps(body), headers=admin())
    assert answer.status_code == 400
    assert len(answer.content) < 2000
    assert answer.json()["detail"]
