"""The proxy as a shared HTTP cache (RFC 9111) in front of any origin, in process.

The proxy app runs with its lifespan; its upstream is a scripted origin reached through httpx's
ASGI transport, and a hand-moved clock stands in for time, so nothing here sleeps.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from support.asgi import AppClient
from support.inprocess import InProcessUpstream
from support.origin import FakeClock
from support.scripted import Answer, ScriptedOrigin

from proxy.app import create_app
from proxy.settings import ProxySettings

UPSTREAM = "http://upstream.test"
TOKEN = "run-control"
REGISTER = "register-only"


@pytest.fixture
def origin() -> ScriptedOrigin:
    return ScriptedOrigin()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def proxy(origin: ScriptedOrigin, clock: FakeClock) -> Iterator[AppClient]:
    settings = ProxySettings(
        name="edge",
        upstreams=(UPSTREAM,),
        run_control_token=TOKEN,
        register_token=REGISTER,
        max_object_bytes=64 * 1024,
    )
    transport = httpx.ASGITransport(app=origin)  # type: ignore[arg-type]
    client = httpx.AsyncClient(transport=transport)
    with AppClient(
        create_app(settings, upstream_client=InProcessUpstream(client), clock=clock)
    ) as app:
        yield app


def cacheable(body: bytes = b"constants", max_age: int = 60, **headers: str) -> Answer:
    return Answer(
        200, {"cache-control": f"public, max-age={max_age}", "etag": '"v1"', **headers}, body
    )


def test_a_fresh_entry_is_served_without_asking_upstream(
    proxy: AppClient, origin: ScriptedOrigin
) -> None:
    origin.script("/a", cacheable())
    first, second = proxy.get("/a"), proxy.get("/a")
    assert first.content == second.content == b"constants"
    assert origin.count("/a") == 1
    assert first.headers["cache-status"] == "edge; fwd=miss; fwd-status=200; stored"
    assert second.headers["cache-status"] == "edge; hit; ttl=60"


def test_age_grows_with_time_and_expiry_triggers_revalidation(
    proxy: AppClient, origin: ScriptedOrigin, clock: FakeClock
) -> None:
    origin.script("/a", cacheable(max_age=60))
    proxy.get("/a")
    clock.advance(30)
    assert proxy.get("/a").headers["age"] == "30"
    clock.advance(31)
    again = proxy.get("/a")
    assert origin.count("/a") == 2
    assert origin.last_headers("/a")["if-none-match"] == '"v1"'
    assert again.headers["cache-status"] == "edge; fwd=stale; fwd-status=304; stored; detail=stale"
    assert again.content == b"constants"
    assert again.headers["age"] == "0"


def test_no_store_and_private_answers_are_never_stored(
    proxy: AppClient, origin: ScriptedOrigin
) -> None:
    origin.script("/secret", Answer(200, {"cache-control": "private, max-age=60"}, b"mine"))
    origin.script("/volatile", Answer(200, {"cache-control": "no-store"}, b"now"))
    for target in ("/secret", "/volatile"):
        proxy.get(target)
        proxy.get(target)
        assert origin.count(target) == 2


def test_expires_gives_freshness_when_max_age_is_absent(
    proxy: AppClient, origin: ScriptedOrigin
) -> None:
    dated = {
        "date": "Mon, 01 Jan 2029 00:00:00 GMT",
        "expires": "Mon, 01 Jan 2029 00:01:00 GMT",
        "etag": '"e"',
    }
    origin.script("/dated", Answer(200, dated, b"x"))
    proxy.get("/dated")
    assert proxy.get("/dated").headers["cache-status"].startswith("edge; hit")


def test_vary_keeps_variants_apart(proxy: AppClient, origin: ScriptedOrigin) -> None:
    origin.script("/v", cacheable(vary="Accept-Language"))
    proxy.get("/v", headers={"accept-language": "fr"})
    proxy.get("/v", headers={"accept-language": "de"})
    assert (
        proxy.get("/v", headers={"accept-language": "fr"})
        .headers["cache-status"]
        .startswith("edge; hit")
    )
    assert origin.count("/v") == 2


def test_accept_encoding_variants_collapse_to_gzip_or_identity(
    proxy: AppClient, origin: ScriptedOrigin
) -> None:
    origin.script("/j", cacheable(vary="Accept-Encoding"))
    proxy.get("/j", headers={"accept-encoding": "gzip, deflate"})
    hit = proxy.get("/j", headers={"accept-encoding": "br;q=1.0, gzip;q=0.5"})
    assert hit.headers["cache-status"].startswith("edge; hit")
    assert origin.last_headers("/j")["accept-encoding"] == "gzip"
    proxy.get("/j", headers={"accept-encoding": "identity"})
    assert origin.count("/j") == 2


def test_client_conditional_gets_304_from_the_cache(
    proxy: AppClient, origin: ScriptedOrigin
) -> None:
    origin.script("/a", cacheable())
    proxy.get("/a")
    answer = proxy.get("/a", headers={"if-none-match": 'W/"v1"'})
    assert answer.status_code == 304 and answer.content == b""
    assert origin.count("/a") == 1


def test_request_no_cache_revalidates_end_to_end(proxy: AppClient, origin: ScriptedOrigin) -> None:
    origin.script("/a", cacheable())
    proxy.get("/a")
    refreshed = proxy.get("/a", headers={"cache-control": "max-age=0"})
    assert refreshed.status_code == 200
    assert origin.count("/a") == 2
    assert origin.last_headers("/a")["cache-control"] == "max-age=0"
    assert "detail=request" in refreshed.headers["cache-status"]


def test_stale_while_revalidate_serves_stale_and_refreshes_behind(
    proxy: AppClient, origin: ScriptedOrigin, clock: FakeClock
) -> None:
    origin.script(
        "/s", cacheable(max_age=10, **{"cache-control": "max-age=10, stale-while-revalidate=60"})
    )
    proxy.get("/s")
    clock.advance(20)
    stale = proxy.get("/s")
    assert stale.status_code == 200
    assert "detail=stale-while-revalidate" in stale.headers["cache-status"]
    for _ in range(100):  # let the background revalidation land (bounded)
        if origin.count("/s") == 2:
            break
        proxy.get("/_outpost/healthz")
    assert origin.count("/s") == 2
    assert "edge; hit" in proxy.get("/s").headers["cache-status"]


def test_upstream_failure_serves_stale_with_a_warning(
    proxy: AppClient, origin: ScriptedOrigin, clock: FakeClock
) -> None:
    origin.script("/a", cacheable(max_age=10))
    proxy.get("/a")
    clock.advance(3600)
    origin.script("/a", Answer(503, {}, b"down"))
    origin.not_modified = False
    answer = proxy.get("/a")
    assert answer.status_code == 200 and answer.content == b"constants"
    assert answer.headers["warning"].startswith("111")
    assert "stale-if-error" in answer.headers["cache-status"]


def test_must_revalidate_is_never_served_stale(
    proxy: AppClient, origin: ScriptedOrigin, clock: FakeClock
) -> None:
    origin.script(
        "/m", Answer(200, {"cache-control": "max-age=10, must-revalidate", "etag": '"m"'}, b"m")
    )
    proxy.get("/m")
    clock.advance(60)
    origin.script("/m", Answer(500, {}, b"err"))
    origin.not_modified = False
    answer = proxy.get("/m")
    assert answer.status_code == 500  # the origin's own error, not the stored answer
    assert answer.content == b"err"


def test_unsafe_methods_pass_through_and_invalidate(
    proxy: AppClient, origin: ScriptedOrigin
) -> None:
    origin.script("/a", cacheable())
    proxy.get("/a")
    posted = proxy.post("/a", content=b"update")
    assert origin.count("/a", "POST") == 1
    assert "fwd=method" in posted.headers["cache-status"]
    proxy.get("/a")
    assert origin.count("/a") == 2


def test_head_is_answered_from_the_cache_without_a_body(
    proxy: AppClient, origin: ScriptedOrigin
) -> None:
    origin.script("/a", cacheable(b"x" * 1000))
    proxy.get("/a")
    head = proxy.head("/a")
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == "1000"
    assert origin.count("/a") == 1


def test_hop_by_hop_fields_are_not_forwarded_and_via_is_added(
    proxy: AppClient, origin: ScriptedOrigin
) -> None:
    origin.script(
        "/h",
        cacheable(**{"connection": "x-private", "x-private": "secret", "keep-alive": "timeout=5"}),
    )
    answer = proxy.get("/h", headers={"x-hop": "1", "connection": "x-hop"})
    assert "x-private" not in answer.headers and "keep-alive" not in answer.headers
    assert "x-hop" not in origin.last_headers("/h")
    assert origin.last_headers("/h")["via"] == "1.1 edge"
    assert answer.headers["via"] == "1.1 edge"


def test_objects_over_the_size_limit_are_streamed_not_stored(
    proxy: AppClient, origin: ScriptedOrigin
) -> None:
    big = bytes(range(256)) * 1024  # 256 KiB, over the 64 KiB limit of this proxy
    origin.script("/big", cacheable(big))
    first, second = proxy.get("/big"), proxy.get("/big")
    assert first.content == second.content == big
    assert origin.count("/big") >= 2


def test_requests_with_credentials_are_not_answered_from_the_cache(
    proxy: AppClient, origin: ScriptedOrigin
) -> None:
    origin.script("/a", cacheable())
    proxy.get("/a")
    proxy.get("/a", headers={"authorization": "Bearer someone"})
    assert origin.count("/a") == 2


def test_outpost_reads_share_one_entry_whatever_the_spelling(
    proxy: AppClient, origin: ScriptedOrigin
) -> None:
    origin.script("/v1/resolve/GT?run=5", cacheable(b"answer"))
    proxy.get("/v1/resolve/GT?run=5")
    other = proxy.get("/v1/resolve/GT/?lumi=1&run=005")
    assert other.headers["cache-status"].startswith("edge; hit")
    assert origin.count("/v1/resolve/GT?run=5") == 1


def test_every_answer_carries_the_epoch_and_a_flush_raises_it(
    proxy: AppClient, origin: ScriptedOrigin
) -> None:
    origin.script("/a", cacheable())
    assert proxy.get("/a").headers["outpost-epoch"] == "0"
    flushed = proxy.post(
        "/_outpost/flush", json={"run": 9}, headers={"authorization": f"Bearer {TOKEN}"}
    )
    assert flushed.json() == {
        "name": "edge",
        "run": 9,
        "epoch": 1,
        "acked": 1,
        "caches": ["edge"],
        "failed": [],
    }
    again = proxy.get("/a")
    assert again.headers["outpost-epoch"] == "1"
    assert "detail=epoch" in again.headers["cache-status"]


def test_after_a_flush_immutable_entries_stay_on_the_hot_path(
    origin: ScriptedOrigin, clock: FakeClock
) -> None:
    """Payloads are immutable: a flush spares them, and so must the hot path (after a flush,
    every payload of a run start would otherwise go through the engine)."""
    origin.script("/p", Answer(200, {"cache-control": "public, max-age=31536000, immutable"}, b"p"))
    settings = ProxySettings(name="edge", upstreams=(UPSTREAM,), run_control_token=TOKEN)
    transport = httpx.ASGITransport(app=origin)  # type: ignore[arg-type]
    app = create_app(
        settings,
        upstream_client=InProcessUpstream(httpx.AsyncClient(transport=transport)),
        clock=clock,
    )
    with AppClient(app) as proxy:
        proxy.get("/p")
        before = proxy.get("/p")
        proxy.post("/_outpost/flush", json={"run": 9}, headers={"authorization": f"Bearer {TOKEN}"})

        async def no_engine(*args: object) -> None:
            raise AssertionError("a fresh immutable entry went through the engine")

        app.engine.resolve = no_engine  # type: ignore[method-assign,assignment]
        after = proxy.get("/p")
    assert after.status_code == 200 and after.content == before.content == b"p"
    assert after.headers["cache-status"] == before.headers["cache-status"]
    assert before.headers["cache-status"].startswith("edge; hit")
    assert after.headers["outpost-epoch"] == "1"
    assert origin.count("/p") == 1


def test_varied_answers_are_served_on_the_hot_path_by_their_variant(
    proxy: AppClient, origin: ScriptedOrigin
) -> None:
    """The origin's JSON answers carry `Vary: Accept-Encoding`; a run start's resolve answer
    must not go through the engine for every node once its variant is stored."""
    for language in ("fr", "de"):
        origin.script("/v", cacheable(language.encode(), vary="Accept-Language"))
        proxy.get("/v", headers={"accept-language": language})
    origin.script("/j", cacheable(b"json", vary="Accept-Encoding"))
    proxy.get("/j", headers={"accept-encoding": "gzip, deflate"})

    async def no_engine(*args: object) -> None:
        raise AssertionError("a fresh variant went through the engine")

    proxy.app.engine.resolve = no_engine  # type: ignore[attr-defined]
    for language in ("fr", "de"):
        answer = proxy.get("/v", headers={"accept-language": language})
        assert answer.content == language.encode()
        assert answer.headers["cache-status"].startswith("edge; hit")
    spelled = proxy.get("/j", headers={"accept-encoding": "br;q=1.0, gzip;q=0.5"})
    assert spelled.content == b"json" and spelled.headers["cache-status"].startswith("edge; hit")
    assert origin.count("/v") == 2 and origin.count("/j") == 1
    with pytest.raises(AssertionError, match="through the engine"):
        proxy.get("/j", headers={"accept-encoding": "identity"})  # a variant not yet stored


def test_an_upstream_with_a_newer_epoch_is_followed(
    proxy: AppClient, origin: ScriptedOrigin
) -> None:
    origin.script("/a", cacheable(**{"outpost-epoch": "41"}))
    origin.script("/b", cacheable())
    proxy.get("/b")
    assert proxy.get("/a").headers["outpost-epoch"] == "41"
    assert "detail=epoch" in proxy.get("/b").headers["cache-status"]


@pytest.mark.parametrize(
    ("headers", "body", "status"),
    [
        ({}, {"run": 1}, 401),
        ({"authorization": "Bearer wrong"}, {"run": 1}, 403),
        ({"authorization": f"Bearer {TOKEN}"}, {"run": -1}, 400),
        ({"authorization": f"Bearer {TOKEN}"}, {"nothing": 1}, 400),
        ({"authorization": f"Bearer {TOKEN}"}, [1, 2], 400),
    ],
)
def test_flush_refuses_bad_callers_and_bad_bodies(
    proxy: AppClient, headers: dict[str, str], body: object, status: int
) -> None:
    answer = proxy.post("/_outpost/flush", json=body, headers=headers)
    assert answer.status_code == status
    assert set(answer.json()) == {"error", "detail", "accepted"}
    assert proxy.get("/_outpost/status").json()["epoch"] == 0


def test_status_reports_name_epoch_cache_and_upstreams(
    proxy: AppClient, origin: ScriptedOrigin
) -> None:
    origin.script("/a", cacheable())
    proxy.get("/a")
    proxy.get("/a")
    status = proxy.get("/_outpost/status").json()
    assert status["name"] == "edge" and status["epoch"] == 0
    assert status["cache"]["entries"] == 1
    assert status["hit_ratio"] == 0.5
    assert status["upstreams"][UPSTREAM]["up"] is True


def test_a_proxy_refuses_to_register_itself_as_its_own_child(proxy: AppClient) -> None:
    auth = {"authorization": f"Bearer {REGISTER}"}
    answer = proxy.post(
        "/_outpost/register", json={"name": "edge", "url": "http://x:1"}, headers=auth
    )
    assert answer.status_code == 400
    assert proxy.get("/_outpost/status").json()["children"] == []


def test_a_flush_that_comes_back_around_a_loop_stops(proxy: AppClient) -> None:
    auth = {"authorization": f"Bearer {TOKEN}"}
    looped = proxy.post("/_outpost/flush", json={"run": 1, "path": ["site", "edge"]}, headers=auth)
    assert looped.json()["acked"] == 0
    assert proxy.get("/_outpost/status").json()["epoch"] == 0


def test_hits_through_the_engine_count_as_hits(proxy: AppClient, origin: ScriptedOrigin) -> None:
    origin.script("/j", cacheable(vary="Accept-Encoding"))
    proxy.get("/j")
    proxy.get("/j", headers={"cache-control": "max-age=30"})  # a directive: through the engine
    proxy.get("/j", headers={"if-none-match": '"v1"'})
    metrics = proxy.get("/_outpost/metrics").text
    assert 'outpost_proxy_requests_total{result="hit"} 2.0' in metrics
    assert 'outpost_proxy_requests_total{result="miss"} 1.0' in metrics


def test_a_304_from_an_upstream_serving_stale_does_not_refresh_the_entry(
    proxy: AppClient, origin: ScriptedOrigin, clock: FakeClock
) -> None:
    origin.script("/a", cacheable(max_age=10))
    proxy.get("/a")
    clock.advance(60)
    origin.script("/a", cacheable(max_age=10, warning='111 - "Revalidation Failed"'))
    answer = proxy.get("/a")
    assert answer.status_code == 200 and answer.headers["warning"].startswith("111")
    again = proxy.get("/a")
    assert "fwd=stale" in again.headers["cache-status"]  # still stale: asked upstream again
    assert origin.count("/a") == 3


def test_settings_refuse_a_name_that_is_not_plain() -> None:
    from outpost.config import SettingsError

    with pytest.raises(SettingsError, match="plain name"):
        ProxySettings(name="node 12;", upstreams=(UPSTREAM,))
    assert ProxySettings(upstreams=(UPSTREAM,), port=9000).name.endswith("-9000")


def test_the_proxys_own_errors_do_not_echo_a_long_request_back(proxy: AppClient) -> None:
    long = "x" * 50_000
    unknown = proxy.get(f"/_outpost/{long}")
    assert unknown.status_code == 404 and len(unknown.content) < 2000
    warm = proxy.post(
        "/_outpost/warm",
        json={"globaltag": long, "run": 1},
        headers={"authorization": f"Bearer {TOKEN}"},
    )
    assert 400 <= warm.status_code < 500 and len(warm.content) < 2000, warm.status_code
