"""The proxy as a general shared HTTP cache, rule by rule (RFC 9111, with RFC 9110, 5861, 9213).

Each test is one behaviour, named after the section that asks for it, against a scripted origin
in process (two of them, where failover matters) and a hand-moved clock: nothing sleeps.
`docs/http-caching.md` lists what the proxy does for every section, and why where it differs.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from starlette.types import Receive, Scope, Send
from support.asgi import AppClient
from support.inprocess import InProcessUpstream
from support.origin import FakeClock
from support.scripted import Answer, ScriptedOrigin
from support.servers import free_port, outpost_command, run_process

from proxy.app import create_app
from proxy.settings import ProxySettings

FIRST, SECOND = "http://first.test", "http://second.test"
DATE = "Mon, 01 Jan 2029 00:00:00 GMT"
LAST_MODIFIED = "Sun, 01 Jan 2028 00:00:00 GMT"


@pytest.fixture
def origin() -> ScriptedOrigin:
    return ScriptedOrigin()


@pytest.fixture
def other() -> ScriptedOrigin:
    """The second upstream: asked when the first fails."""
    return ScriptedOrigin()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def proxy(origin: ScriptedOrigin, other: ScriptedOrigin, clock: FakeClock) -> Iterator[AppClient]:
    # no operator's stale-if-error window: only the answers' own directives count here
    settings = ProxySettings(
        name="edge", upstreams=(FIRST, SECOND), retries=0, stale_if_error_seconds=0
    )
    mounts = {
        FIRST: httpx.ASGITransport(app=origin),  # type: ignore[arg-type]
        SECOND: httpx.ASGITransport(app=other),  # type: ignore[arg-type]
    }
    client = httpx.AsyncClient(mounts=mounts)
    upstream = InProcessUpstream(client)
    with AppClient(create_app(settings, upstream_client=upstream, clock=clock)) as app:
        yield app


def fresh(body: bytes = b"stored", max_age: int = 60, **headers: str) -> Answer:
    return Answer(200, {"cache-control": f"max-age={max_age}", "etag": '"v1"', **headers}, body)


def twice(proxy: AppClient, target: str, **kwargs: object) -> httpx.Response:
    proxy.get(target, **kwargs)  # type: ignore[arg-type]
    return proxy.get(target, **kwargs)  # type: ignore[arg-type]


def is_hit(answer: httpx.Response) -> bool:
    return answer.headers["cache-status"].startswith("edge; hit")


# --- errors of the origin (RFC 9111 §4.2.4, RFC 5861) ------------------------------------------


def test_5xx_after_failover_is_the_last_upstreams_own_answer(
    proxy: AppClient, origin: ScriptedOrigin, other: ScriptedOrigin
) -> None:
    origin.script("/a", Answer(503, {"x-from": "first"}, b"first is down"))
    other.script("/a", Answer(500, {"x-from": "second", "content-type": "text/plain"}, b"oops"))
    answer = proxy.get("/a")
    assert (answer.status_code, answer.content) == (500, b"oops")
    assert answer.headers["x-from"] == "second"
    assert origin.count("/a") == other.count("/a") == 1  # failover still tried both
    assert "fwd-status=500" in answer.headers["cache-status"]


@pytest.mark.parametrize("status", [500, 502, 503, 504, 599])
def test_rfc5861_stale_if_error_serves_the_stored_answer_on_any_5xx(
    proxy: AppClient,
    origin: ScriptedOrigin,
    other: ScriptedOrigin,
    clock: FakeClock,
    status: int,
) -> None:
    origin.script("/a", fresh(max_age=10, **{"cache-control": "max-age=10, stale-if-error=600"}))
    proxy.get("/a")
    clock.advance(60)
    origin.script("/a", Answer(status, {}, b"broken"))
    other.script("/a", Answer(status, {}, b"broken"))
    origin.not_modified = other.not_modified = False
    answer = proxy.get("/a")
    assert (answer.status_code, answer.content) == (200, b"stored")
    assert answer.headers["warning"] == '111 - "Revalidation Failed"'


def test_a_5xx_past_its_stale_if_error_window_is_passed_on(
    proxy: AppClient, origin: ScriptedOrigin, other: ScriptedOrigin, clock: FakeClock
) -> None:
    origin.script("/a", fresh(max_age=10, **{"cache-control": "max-age=10, stale-if-error=5"}))
    proxy.get("/a")
    clock.advance(60)
    for upstream in (origin, other):
        upstream.script("/a", Answer(503, {}, b"down"))
        upstream.not_modified = False
    assert proxy.get("/a").status_code == 503


# --- which answers are stored (§3, RFC 9110 §15.1) ---------------------------------------------


@pytest.mark.parametrize(
    "status", [203, 204, 299, 301, 302, 303, 307, 308, 400, 404, 410, 499, 500]
)
def test_3_any_final_status_with_explicit_freshness_is_stored(
    proxy: AppClient, origin: ScriptedOrigin, other: ScriptedOrigin, status: int
) -> None:
    answer = Answer(status, {"cache-control": "max-age=60", "location": "/elsewhere"}, b"")
    origin.script("/a", answer)
    other.script("/a", answer)
    served = twice(proxy, "/a")
    assert served.status_code == status
    assert is_hit(served)
    assert origin.count("/a") == 1


@pytest.mark.parametrize("status", [200, 203, 300, 301, 404, 405, 410, 414, 501])
def test_4_2_2_heuristically_cacheable_statuses_are_stored_with_a_heuristic_lifetime(
    proxy: AppClient, origin: ScriptedOrigin, other: ScriptedOrigin, status: int
) -> None:
    answer = Answer(status, {"date": DATE, "last-modified": LAST_MODIFIED}, b"guess")
    origin.script("/a", answer)
    other.script("/a", answer)
    served = twice(proxy, "/a")
    assert is_hit(served)  # 10% of a year since Last-Modified, capped at a day
    assert served.headers["cache-status"].endswith("ttl=86400")


@pytest.mark.parametrize("status", [201, 302, 303, 307, 400, 403])
def test_4_2_2_other_statuses_are_not_stored_without_explicit_freshness(
    proxy: AppClient, origin: ScriptedOrigin, status: int
) -> None:
    origin.script("/a", Answer(status, {"date": DATE, "last-modified": LAST_MODIFIED}, b"x"))
    twice(proxy, "/a")
    assert origin.count("/a") == 2


# --- Expires, Age, Cache-Control values (§5.3, §5.1, §4.2.1) -----------------------------------


@pytest.mark.parametrize(
    "expires",
    [
        "Mon, 01 Jan 2029 00:01:00 UTC",  # not GMT
        "Monday, 01-Jan-29 00:01:00 GMT",  # a 2-digit year: RFC 850, allowed, but...
        "2029-01-01T00:01:00Z",  # ISO 8601
        "0",
        "Mon, 01 Jan 2029 00:01:00 GMT, Mon, 01 Jan 2029 00:02:00 GMT",  # several values
    ],
)
def test_5_3_an_invalid_expires_means_already_expired(
    proxy: AppClient, origin: ScriptedOrigin, expires: str
) -> None:
    origin.script("/a", Answer(200, {"date": DATE, "expires": expires, "etag": '"e"'}, b"x"))
    served = twice(proxy, "/a")
    if expires.startswith("Monday"):  # the obsolete RFC 850 form is valid (RFC 9110 §5.6.7)
        assert is_hit(served)
        return
    assert not is_hit(served)
    assert origin.count("/a") == 2


@pytest.mark.parametrize("age", ["10a", "10;q=1", "-5", "1.5", ""])
def test_5_1_an_invalid_age_is_ignored(proxy: AppClient, origin: ScriptedOrigin, age: str) -> None:
    origin.script("/a", fresh(age=age))
    served = twice(proxy, "/a")
    assert served.headers["age"] == "0"
    assert served.headers["cache-status"].endswith("ttl=60")


def test_5_1_a_list_valued_age_counts_its_first_member(
    proxy: AppClient, origin: ScriptedOrigin
) -> None:
    origin.script("/a", fresh(age="10, 20"))
    assert twice(proxy, "/a").headers["age"] == "10"


@pytest.mark.parametrize(
    "cache_control",
    [
        "max-age=100a",
        "max-age=1.5",
        "max-age=-1",
        "max-age = 60",
        "max-age=60, max-age=120",  # conflicting duplicates: the most restrictive reading
        "s-maxage=x, max-age=60",
    ],
)
def test_4_2_1_invalid_or_conflicting_freshness_makes_the_answer_stale(
    proxy: AppClient, origin: ScriptedOrigin, cache_control: str
) -> None:
    origin.script("/a", Answer(200, {"cache-control": cache_control, "etag": '"v1"'}, b"x"))
    served = twice(proxy, "/a")
    assert not is_hit(served)
    assert origin.count("/a") == 2


@pytest.mark.parametrize("cache_control", ['max-age="60"', "MAX-AGE=60", "max-age=60, max-age=60"])
def test_4_2_1_valid_spellings_of_max_age_give_freshness(
    proxy: AppClient, origin: ScriptedOrigin, cache_control: str
) -> None:
    origin.script("/a", Answer(200, {"cache-control": cache_control}, b"x"))
    assert is_hit(twice(proxy, "/a"))


@pytest.mark.parametrize("asked", ["max-age=abc", "min-fresh=1.5", "max-age= 0"])
def test_5_2_1_an_invalid_request_directive_is_ignored_not_taken_as_zero(
    proxy: AppClient, origin: ScriptedOrigin, asked: str
) -> None:
    origin.script("/a", fresh())
    proxy.get("/a")
    assert is_hit(proxy.get("/a", headers={"cache-control": asked}))
    assert origin.count("/a") == 1


# --- targeted cache control (RFC 9213) --------------------------------------------------------


def test_rfc9213_cdn_cache_control_replaces_cache_control_for_the_proxy(
    proxy: AppClient, origin: ScriptedOrigin
) -> None:
    headers = {"cache-control": "no-store", "cdn-cache-control": "max-age=60"}
    origin.script("/a", Answer(200, headers, b"x"))
    served = twice(proxy, "/a")
    assert is_hit(served)
    assert served.headers["cache-control"] == "no-store"  # browsers still get their own rule
    assert served.headers["cdn-cache-control"] == "max-age=60"


def test_rfc9213_outpost_cache_control_wins_and_reaches_outpost_tiers_only(
    proxy: AppClient, origin: ScriptedOrigin
) -> None:
    headers = {
        "cache-control": "max-age=0",
        "cdn-cache-control": "no-store",
        "outpost-cache-control": "max-age=600",
    }
    origin.script("/a", Answer(200, headers, b"x"))
    served = twice(proxy, "/a")
    assert is_hit(served)
    assert served.headers["cache-status"].endswith("ttl=600")
    assert "outpost-cache-control" not in served.headers
    tier = proxy.get("/a", headers={"user-agent": "outpost-proxy/node-1"})
    assert is_hit(tier)
    assert tier.headers["outpost-cache-control"] == "max-age=600"
    assert origin.count("/a") == 1


def test_rfc9213_an_unparsable_targeted_field_is_ignored(
    proxy: AppClient, origin: ScriptedOrigin
) -> None:
    headers = {"cache-control": "max-age=60", "cdn-cache-control": "max-age=(", "etag": '"v"'}
    origin.script("/a", Answer(200, headers, b"x"))
    assert is_hit(twice(proxy, "/a"))


def test_rfc9213_a_targeted_no_store_keeps_the_answer_out(
    proxy: AppClient, origin: ScriptedOrigin
) -> None:
    headers = {"cache-control": "max-age=60", "outpost-cache-control": "no-store"}
    origin.script("/a", Answer(200, headers, b"x"))
    twice(proxy, "/a")
    assert origin.count("/a") == 2


# --- HEAD (§4.3.5) ------------------------------------------------------------------------------


def test_4_3_5_a_head_is_answered_from_a_stored_get(
    proxy: AppClient, origin: ScriptedOrigin
) -> None:
    origin.script("/a", fresh())
    proxy.get("/a")
    head = proxy.head("/a")
    assert (head.status_code, head.content) == (200, b"")
    assert head.headers["content-length"] == "6"
    assert origin.count("/a", "HEAD") == 0


def test_4_3_5_a_head_miss_writes_through(proxy: AppClient, origin: ScriptedOrigin) -> None:
    origin.script("/a", fresh())
    assert proxy.head("/a").content == b""
    assert is_hit(proxy.get("/a"))
    assert origin.count("/a") == 1  # fetched once, as a GET, and stored


def test_4_3_5_a_heads_answer_freshens_the_stored_get(
    proxy: AppClient, origin: ScriptedOrigin, clock: FakeClock
) -> None:
    origin.script("/a", fresh(max_age=10, **{"x-version": "1"}))
    proxy.get("/a")
    clock.advance(30)
    origin.script("/a", fresh(max_age=60, **{"x-version": "2"}))
    head = proxy.head("/a")
    assert origin.count("/a", "HEAD") == 1
    assert head.headers["x-version"] == "2"
    after = proxy.get("/a")
    assert is_hit(after)  # freshened by the HEAD: no GET went up
    assert (after.content, after.headers["x-version"]) == (b"stored", "2")
    assert origin.count("/a") == 1


def test_4_3_5_a_head_that_does_not_match_makes_the_stored_get_stale(
    proxy: AppClient, origin: ScriptedOrigin, clock: FakeClock
) -> None:
    origin.script("/a", fresh(max_age=10))
    proxy.get("/a")
    clock.advance(30)
    origin.script("/a", Answer(200, {"cache-control": "max-age=60", "etag": '"v2"'}, b"newer"))
    proxy.head("/a")
    assert proxy.get("/a").content == b"newer"
    assert origin.count("/a") == 2


# --- invalidation (§4.4) ------------------------------------------------------------------------


def test_4_4_an_unsafe_methods_success_invalidates_its_target_location_and_content_location(
    proxy: AppClient, origin: ScriptedOrigin
) -> None:
    for target in ("/a", "/b", "/c", "/d"):
        origin.script(target, fresh())
        proxy.get(target)
    location = {"location": "/b", "content-location": "http://origin.test/c"}
    origin.script("/a", Answer(201, location, b"made"))
    assert proxy.post("/a", content=b"x").status_code == 201
    origin.script("/a", fresh())
    for target in ("/a", "/b", "/c", "/d"):
        proxy.get(target)
    assert [origin.count(t) for t in ("/a", "/b", "/c", "/d")] == [2, 2, 2, 1]


def test_4_4_a_location_on_another_host_is_not_invalidated(
    proxy: AppClient, origin: ScriptedOrigin
) -> None:
    origin.script("/b", fresh())
    proxy.get("/b")
    origin.script("/a", Answer(201, {"location": "http://elsewhere.test/b"}, b"made"))
    proxy.post("/a", content=b"x")
    assert is_hit(proxy.get("/b"))


def test_4_4_an_error_does_not_invalidate(proxy: AppClient, origin: ScriptedOrigin) -> None:
    origin.script("/a", fresh())
    proxy.get("/a")
    origin.script("/a", Answer(409, {"cache-control": "no-store"}, b"conflict"))
    proxy.post("/a", content=b"x")
    origin.script("/a", fresh())
    assert is_hit(proxy.get("/a"))


def test_4_4_invalidation_hides_every_stored_variant(
    proxy: AppClient, origin: ScriptedOrigin, clock: FakeClock
) -> None:
    origin.script("/v", fresh(vary="Accept-Language"))
    for language in ("fr", "de"):
        proxy.get("/v", headers={"accept-language": language})
    origin.script("/v", Answer(204, {}, b""))
    proxy.post("/v", content=b"x")
    clock.advance(1)
    origin.script("/v", fresh(b"new", vary="Accept-Language"))
    for language in ("fr", "de"):
        assert proxy.get("/v", headers={"accept-language": language}).content == b"new"
    assert origin.count("/v") == 4


# --- request directives (§5.2.1) ----------------------------------------------------------------


def test_5_2_1_5_a_no_store_request_is_not_stored(proxy: AppClient, origin: ScriptedOrigin) -> None:
    origin.script("/a", fresh())
    proxy.get("/a", headers={"cache-control": "no-store"})
    proxy.get("/a")
    assert origin.count("/a") == 2


def test_5_2_1_4_a_no_cache_request_revalidates_with_the_stored_validators(
    proxy: AppClient, origin: ScriptedOrigin
) -> None:
    origin.script("/a", fresh())
    proxy.get("/a")
    answer = proxy.get("/a", headers={"cache-control": "no-cache"})
    assert origin.last_headers("/a")["if-none-match"] == '"v1"'
    assert "fwd-status=304" in answer.headers["cache-status"]
    assert answer.content == b"stored"


def test_5_2_1_7_only_if_cached_answers_504_when_nothing_is_stored(
    proxy: AppClient, origin: ScriptedOrigin
) -> None:
    origin.script("/a", fresh())
    refused = proxy.get("/a", headers={"cache-control": "only-if-cached"})
    assert refused.status_code == 504
    assert "only-if-cached" in refused.json()["detail"]
    assert origin.count("/a") == 0
    proxy.get("/a")
    assert proxy.get("/a", headers={"cache-control": "only-if-cached"}).status_code == 200


def test_5_2_1_7_only_if_cached_answers_504_when_the_stored_answer_is_stale(
    proxy: AppClient, origin: ScriptedOrigin, clock: FakeClock
) -> None:
    origin.script("/a", fresh(max_age=10))
    proxy.get("/a")
    clock.advance(30)
    assert proxy.get("/a", headers={"cache-control": "only-if-cached"}).status_code == 504
    assert origin.count("/a") == 1


# --- validators (RFC 9110 §8.8.3, §13; RFC 9111 §4.3.4) -----------------------------------------


def test_13_1_2_a_clients_if_none_match_goes_up_as_sent_when_nothing_is_stored(
    proxy: AppClient, origin: ScriptedOrigin
) -> None:
    origin.script("/a", fresh())
    answer = proxy.get("/a", headers={"if-none-match": '"v1"'})
    assert answer.status_code == 304
    assert origin.last_headers("/a")["if-none-match"] == '"v1"'
    assert is_hit(twice(proxy, "/a")) and origin.count("/a") == 2  # the 304 stored nothing


@pytest.mark.parametrize(
    ("asked", "status"),
    [('"v1"', 304), ('W/"v1"', 304), ('"x", "v1"', 304), ("*", 304), ("v1", 200), ('"V1"', 200)],
)
def test_8_8_3_if_none_match_uses_the_weak_comparison_of_quoted_tags(
    proxy: AppClient, origin: ScriptedOrigin, asked: str, status: int
) -> None:
    origin.script("/a", fresh(etag='W/"v1"'))
    proxy.get("/a")
    assert proxy.get("/a", headers={"if-none-match": asked}).status_code == status


def test_4_3_4_a_304_updates_the_stored_headers_but_not_the_excluded_ones(
    proxy: AppClient, origin: ScriptedOrigin, clock: FakeClock
) -> None:
    origin.script("/a", fresh(max_age=10, **{"x-version": "1", "content-type": "text/plain"}))
    proxy.get("/a")
    clock.advance(30)
    origin.script(
        "/a",
        Answer(
            200,
            {
                "cache-control": "max-age=60",
                "etag": '"v1"',
                "x-version": "2",
                "content-type": "text/plain",
                "set-cookie": "a=b",
            },
            b"not sent with a 304",
        ),
    )
    revalidated = proxy.get("/a")
    assert "fwd-status=304" in revalidated.headers["cache-status"]
    after = proxy.get("/a")
    assert is_hit(after)
    assert after.headers["x-version"] == "2"
    assert after.headers["content-length"] == "6"
    assert "set-cookie" not in after.headers


@pytest.mark.parametrize("directive", ['no-cache="x-secret"', 'private="x-secret"'])
def test_5_2_2_qualified_no_cache_and_private_fields_are_left_out_of_stored_answers(
    proxy: AppClient, origin: ScriptedOrigin, directive: str
) -> None:
    headers = {"cache-control": f"max-age=60, {directive}", "x-secret": "mine", "x-kept": "1"}
    origin.script("/a", Answer(200, headers, b"x"))
    served = twice(proxy, "/a")
    assert is_hit(served)
    assert "x-secret" not in served.headers
    assert served.headers["x-kept"] == "1"


# --- Vary (§4.1) ------------------------------------------------------------------------------


def test_4_1_equivalent_accept_language_values_share_a_variant(
    proxy: AppClient, origin: ScriptedOrigin
) -> None:
    origin.script("/v", fresh(vary="Accept-Language"))
    proxy.get("/v", headers={"accept-language": "fr-CH, fr;q=0.9, en;q=0.8"})
    again = proxy.get("/v", headers={"accept-language": "EN;q=0.8 ,fr-ch,fr;q=0.9"})
    assert is_hit(again)
    assert origin.count("/v") == 1


# --- ranges (RFC 9110 §14) --------------------------------------------------------------------


def test_14_a_range_is_answered_206_from_a_stored_complete_answer(
    proxy: AppClient, origin: ScriptedOrigin
) -> None:
    origin.script("/a", fresh(b"0123456789"))
    proxy.get("/a")
    part = proxy.get("/a", headers={"range": "bytes=2-5"})
    assert (part.status_code, part.content) == (206, b"2345")
    assert part.headers["content-range"] == "bytes 2-5/10"
    assert part.headers["content-length"] == "4"
    assert origin.count("/a") == 1


def test_14_a_range_on_a_miss_fetches_the_whole_answer_and_stores_it(
    proxy: AppClient, origin: ScriptedOrigin
) -> None:
    origin.script("/a", fresh(b"0123456789"))
    part = proxy.get("/a", headers={"range": "bytes=-3"})
    assert (part.status_code, part.content) == (206, b"789")
    assert "range" not in origin.last_headers("/a")
    assert is_hit(proxy.get("/a"))


def test_14_an_unsatisfiable_range_is_416(proxy: AppClient, origin: ScriptedOrigin) -> None:
    origin.script("/a", fresh(b"0123456789"))
    proxy.get("/a")
    refused = proxy.get("/a", headers={"range": "bytes=10-"})
    assert refused.status_code == 416
    assert refused.headers["content-range"] == "bytes */10"


@pytest.mark.parametrize("if_range", ['"v2"', 'W/"v1"'])
def test_13_1_5_an_if_range_that_does_not_hold_gets_the_whole_answer(
    proxy: AppClient, origin: ScriptedOrigin, if_range: str
) -> None:
    origin.script("/a", fresh(b"0123456789"))
    proxy.get("/a")
    whole = proxy.get("/a", headers={"range": "bytes=0-1", "if-range": if_range})
    assert (whole.status_code, whole.content) == (200, b"0123456789")
    held = proxy.get("/a", headers={"range": "bytes=0-1", "if-range": '"v1"'})
    assert (held.status_code, held.content) == (206, b"01")


# --- Authorization (§3.5) ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "cache_control", ["public, max-age=60", "s-maxage=60", "max-age=60, must-revalidate"]
)
def test_3_5_an_answer_to_credentials_is_stored_when_it_says_it_may_be_shared(
    proxy: AppClient, origin: ScriptedOrigin, cache_control: str
) -> None:
    origin.script("/a", Answer(200, {"cache-control": cache_control}, b"shared"))
    proxy.get("/a", headers={"authorization": "Bearer someone"})
    assert origin.last_headers("/a")["authorization"] == "Bearer someone"
    assert is_hit(proxy.get("/a"))


def test_3_5_an_answer_to_credentials_without_a_sharing_directive_is_not_stored(
    proxy: AppClient, origin: ScriptedOrigin
) -> None:
    origin.script("/a", Answer(200, {"cache-control": "max-age=60"}, b"mine"))
    proxy.get("/a", headers={"authorization": "Bearer someone"})
    proxy.get("/a")
    assert origin.count("/a") == 2
    assert "authorization" not in origin.last_headers("/a")


# --- interim responses (RFC 9110 §15.2) ---------------------------------------------------------


@pytest.fixture
def early_hints_origin() -> Iterator[str]:
    """A socket origin that sends `103 Early Hints` before each final answer: what the
    in-process upstream cannot show, so the proxy uses its real client (aiohttp) here."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(5)
                with contextlib.suppress(OSError):
                    while conn.recv(65536).find(b"\r\n\r\n") < 0:
                        pass
                    conn.sendall(
                        b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"
                        b"HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\n"
                        b"Content-Length: 5\r\nConnection: close\r\n\r\nfinal"
                    )

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    thread.join(timeout=5)
    server.close()


def test_15_2_an_interim_response_is_never_stored(early_hints_origin: str) -> None:
    settings = ProxySettings(name="edge", upstreams=(early_hints_origin,))
    with AppClient(create_app(settings)) as proxy:
        first, second = proxy.get("/a"), proxy.get("/a")
    assert (first.status_code, first.content) == (200, b"final")
    assert (second.status_code, second.content) == (200, b"final")
    assert is_hit(second)  # the final answer was stored, not the 103
    assert "link" not in second.headers  # the 103's fields belong to the 103 alone


def test_15_2_an_interim_response_is_forwarded_before_the_final_one(
    early_hints_origin: str, tmp_path: Path
) -> None:
    port = free_port()
    command = outpost_command("proxy", "--upstream", early_hints_origin, "--port", str(port))
    command += ["--name", "edge", "--log-level", "warning"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("OUTPOST_")}
    with run_process(
        command, tmp_path / "proxy.log", f"http://127.0.0.1:{port}/_outpost/healthz", env
    ):
        fetched, stored = (read_raw(port, "/a") for _ in range(2))
    interim, final = fetched.split(b"\r\n\r\n", 1)
    assert interim.startswith(b"HTTP/1.1 103 ")
    assert b"link: </style.css>; rel=preload" in interim.lower()
    assert final.startswith(b"HTTP/1.1 200 ") and final.endswith(b"final")
    assert stored.startswith(b"HTTP/1.1 200 ")  # a hit: nothing from upstream to forward


def read_raw(port: int, target: str) -> bytes:
    """One HTTP/1.1 GET on its own connection, and every byte of the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(f"GET {target} HTTP/1.1\r\nHost: edge\r\nConnection: close\r\n\r\n".encode())
        received = b""
        while chunk := conn.recv(65536):
            received += chunk
    return received


# --- parts of objects too large to store whole (§3.3, §3.4) -------------------------------------

TOKEN = "run-control"
BIG = bytes(range(256)) * 16  # 4096 bytes, over the proxy's 1024-byte max_object_bytes


class RangedOrigin:
    """Serves BIG with ranges (one range, a strong ETag) and records each Range it was asked."""

    def __init__(self) -> None:
        self.etag = '"big-1"'
        self.ranges: list[str] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        asked = dict(scope["headers"]).get(b"range", b"").decode()
        fields = [(b"cache-control", b"max-age=60"), (b"etag", self.etag.encode())]
        status, body = 200, BIG
        if asked.startswith("bytes="):
            self.ranges.append(asked)
            first, last = (int(n) for n in asked.removeprefix("bytes=").split("-"))
            status, body = 206, BIG[first : last + 1]
            fields.append((b"content-range", f"bytes {first}-{last}/{len(BIG)}".encode()))
        fields.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": fields})
        await send({"type": "http.response.body", "body": body})


@pytest.fixture
def ranged() -> RangedOrigin:
    return RangedOrigin()


@pytest.fixture
def small_proxy(ranged: RangedOrigin, clock: FakeClock) -> Iterator[AppClient]:
    settings = ProxySettings(
        name="edge",
        upstreams=(FIRST,),
        max_object_bytes=1024,
        retries=0,
        run_control_token=TOKEN,
    )
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=ranged))  # type: ignore[arg-type]
    upstream = InProcessUpstream(client)
    with AppClient(create_app(settings, upstream_client=upstream, clock=clock)) as app:
        yield app


def ask(proxy: AppClient, first: int, last: int) -> httpx.Response:
    answer = proxy.get("/big", headers={"range": f"bytes={first}-{last}"})
    assert (answer.status_code, answer.content) == (206, BIG[first : last + 1])
    assert answer.headers["content-range"] == f"bytes {first}-{last}/4096"
    return answer


def test_3_3_a_part_of_an_object_too_large_to_store_is_reused_for_the_ranges_it_holds(
    small_proxy: AppClient, ranged: RangedOrigin
) -> None:
    ask(small_proxy, 0, 499)
    reused = ask(small_proxy, 100, 199)
    assert is_hit(reused)
    assert ranged.ranges == ["bytes=0-499"]


def test_3_4_parts_of_one_representation_are_combined(
    small_proxy: AppClient, ranged: RangedOrigin
) -> None:
    ask(small_proxy, 0, 499)
    ask(small_proxy, 500, 999)
    assert is_hit(ask(small_proxy, 250, 749))  # across both parts
    assert ranged.ranges == ["bytes=0-499", "bytes=500-999"]


def test_3_4_parts_of_another_representation_are_not_combined(
    small_proxy: AppClient, ranged: RangedOrigin
) -> None:
    ask(small_proxy, 0, 499)
    ranged.etag = '"big-2"'
    ask(small_proxy, 500, 999)
    ask(small_proxy, 250, 749)
    assert ranged.ranges == ["bytes=0-499", "bytes=500-999", "bytes=250-749"]


def test_3_4_a_part_with_a_weak_validator_is_not_kept(
    small_proxy: AppClient, ranged: RangedOrigin
) -> None:
    ranged.etag = 'W/"big"'
    ask(small_proxy, 0, 499)
    ask(small_proxy, 0, 499)
    assert ranged.ranges == ["bytes=0-499", "bytes=0-499"]


def test_3_3_a_stale_part_is_not_reused(
    small_proxy: AppClient, ranged: RangedOrigin, clock: FakeClock
) -> None:
    ask(small_proxy, 0, 499)
    clock.advance(61)
    ask(small_proxy, 0, 99)
    assert ranged.ranges == ["bytes=0-499", "bytes=0-99"]


def test_4_4_an_invalidation_drops_the_kept_part_too(
    small_proxy: AppClient, ranged: RangedOrigin
) -> None:
    ask(small_proxy, 0, 499)
    assert small_proxy.post("/big", content=b"x").status_code == 200
    ask(small_proxy, 0, 99)
    assert ranged.ranges == ["bytes=0-499", "bytes=0-99"]


def test_a_purge_drops_the_kept_part_too(small_proxy: AppClient, ranged: RangedOrigin) -> None:
    ask(small_proxy, 0, 499)
    auth = {"authorization": f"Bearer {TOKEN}"}
    purged = small_proxy.post("/_outpost/purge", json={"urls": ["/big"]}, headers=auth)
    assert purged.json()["removed"] == {"edge": 1}
    ask(small_proxy, 0, 99)
    assert ranged.ranges == ["bytes=0-499", "bytes=0-99"]
