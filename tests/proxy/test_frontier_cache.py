"""Frontier clients through the proxy, in process: Frontier URLs cached on their exact bytes, the
servlet's max-age and Last-Modified obeyed, frontier_client's soft (`max-age=0`) and hard
(`Pragma: no-cache`) refreshes, stale-if-error; then who may use the cache (client networks) and
for which destinations (forward mode).

The upstream is a scripted origin that validates as a Frontier servlet does: If-Modified-Since
against Last-Modified, no ETag. A hand-moved clock stands in for time.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from starlette.types import ASGIApp, Receive, Scope, Send
from support.asgi import AppClient
from support.inprocess import InProcessUpstream
from support.origin import FakeClock
from support.scripted import Answer, ScriptedOrigin

from proxy.app import ProxyApp, create_app
from proxy.settings import ProxySettings

UPSTREAM = "http://upstream.test"
PATH_FORM = (
    "/outpost/Frontier/type=frontier_request:1:DEFAULT&encoding=BLOBzip&p1=eNpzdQ0K8vUEAAmkAl0"
)
QUERY_FORM = "/FrontierProd/Frontier?type=frontier_request:1:DEFAULT&encoding=BLOBzip&p1=eNpzdQ0K"
LAST_MODIFIED = "Fri, 01 Jan 2027 00:00:00 GMT"  # before the FakeClock's now (2027-01-15)
# What frontier_client sends on every request (client/http/fn-htclient.c).
FRONTIER = {"x-frontier-id": "test 1.0 pid=1; user", "cache-control": "max-stale=1"}
SOFT_REFRESH = {**FRONTIER, "cache-control": "max-stale=1,max-age=0"}
HARD_REFRESH = {**FRONTIER, "pragma": "no-cache"}


@dataclass
class FrontierServlet(ScriptedOrigin):
    """Validates with If-Modified-Since, as the Frontier servlet does; records raw targets."""

    raw: list[str] = field(default_factory=list)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        query = scope["query_string"].decode("latin-1")
        raw = scope["raw_path"].decode("latin-1")
        self.raw.append(f"{raw}?{query}" if query else raw)
        target = scope["path"] + (f"?{query}" if query else "")
        answer = self.answers.get(target)
        since = dict(scope["headers"]).get(b"if-modified-since")
        modified = answer.headers.get("last-modified", "").encode() if answer else b""
        if self.not_modified and since is not None and since == modified:
            headers = {k.decode(): v.decode() for k, v in scope["headers"]}
            self.seen.append((scope["method"], target, headers))
            assert answer is not None
            out = [(k.encode(), v.encode()) for k, v in answer.headers.items()]
            await send({"type": "http.response.start", "status": 304, "headers": out})
            await send({"type": "http.response.body", "body": b""})
            return
        await super().__call__(scope, receive, send)


def servlet_answer(body: bytes = b"<frontier>rows</frontier>", max_age: int = 300) -> Answer:
    headers = {
        "cache-control": f"max-age={max_age}",
        "last-modified": LAST_MODIFIED,
        "content-type": "text/xml",
    }
    return Answer(200, headers, body)


@pytest.fixture
def servlet() -> FrontierServlet:
    return FrontierServlet()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def start(
    servlet: FrontierServlet, clock: FakeClock, wrap: Any = None, **settings: Any
) -> AppClient:
    config = ProxySettings(name="edge", upstreams=(UPSTREAM,), **settings)
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=servlet))  # type: ignore[arg-type]
    app = create_app(config, upstream_client=InProcessUpstream(client), clock=clock)
    return AppClient(wrap(app) if wrap else app)


@pytest.fixture
def proxy(servlet: FrontierServlet, clock: FakeClock) -> Iterator[AppClient]:
    with start(servlet, clock) as app:
        yield app


# --- caching -----------------------------------------------------------------------------------


@pytest.mark.parametrize("url", [PATH_FORM, QUERY_FORM])
def test_frontier_urls_are_cached_second_get_is_a_hit(
    proxy: AppClient, servlet: FrontierServlet, url: str
) -> None:
    servlet.script(url, servlet_answer())
    first = proxy.get(url, headers=FRONTIER)
    second = proxy.get(url, headers=FRONTIER)
    assert first.content == second.content == b"<frontier>rows</frontier>"
    assert servlet.count(url) == 1
    assert first.headers["cache-status"] == "edge; fwd=miss; fwd-status=200; stored"
    assert second.headers["cache-status"] == "edge; hit; ttl=300"
    assert second.headers["last-modified"] == LAST_MODIFIED
    assert servlet.raw == [url]  # the exact bytes went upstream
    assert servlet.last_headers(url)["x-frontier-id"] == FRONTIER["x-frontier-id"]


def test_frontier_hits_with_max_stale_take_the_hot_path(
    proxy: AppClient, servlet: FrontierServlet
) -> None:
    servlet.script(PATH_FORM, servlet_answer())
    proxy.get(PATH_FORM, headers=FRONTIER)
    proxy.get(PATH_FORM, headers=FRONTIER)
    app = proxy.app
    assert isinstance(app, ProxyApp)
    assert app.hits._plain == {b"max-stale=1": True}  # no trip through the engine for a hit
    metrics = proxy.get("/_outpost/metrics").text
    assert 'outpost_proxy_requests_total{result="hit"} 1.0' in metrics


def test_frontier_keys_keep_the_bytes_as_sent(proxy: AppClient, servlet: FrontierServlet) -> None:
    escaped = "/outpost/Frontier/type=x&p1=ab%2Bcd"
    plain = "/outpost/Frontier/type=x&p1=ab+cd"
    servlet.script(plain, servlet_answer())  # the servlet decodes both to this
    proxy.get(escaped)
    proxy.get(plain)
    assert proxy.get(escaped).headers["cache-status"].startswith("edge; hit")
    assert proxy.get(plain).headers["cache-status"].startswith("edge; hit")
    assert servlet.raw == [escaped, plain]  # two entries, each fetched with its own bytes


def test_query_parameters_are_not_reordered(proxy: AppClient, servlet: FrontierServlet) -> None:
    one, other = "/s/Frontier?type=a&p1=b", "/s/Frontier?p1=b&type=a"
    servlet.script(one, servlet_answer(b"one"))
    servlet.script(other, servlet_answer(b"other"))
    assert proxy.get(one).content == b"one"
    assert proxy.get(other).content == b"other"
    assert servlet.raw == [one, other]


def test_soft_refresh_revalidates_with_if_modified_since_and_serves_the_body_on_304(
    proxy: AppClient, servlet: FrontierServlet
) -> None:
    servlet.script(PATH_FORM, servlet_answer())
    proxy.get(PATH_FORM, headers=FRONTIER)
    refreshed = proxy.get(PATH_FORM, headers=SOFT_REFRESH)
    assert refreshed.status_code == 200 and refreshed.content == b"<frontier>rows</frontier>"
    assert servlet.count(PATH_FORM) == 2
    upstream = servlet.last_headers(PATH_FORM)
    assert upstream["if-modified-since"] == LAST_MODIFIED
    # validation is passed on, up the tree; the client's max-stale stays with its own request
    assert upstream["cache-control"] == "max-age=0"
    assert refreshed.headers["cache-status"] == (
        "edge; fwd=stale; fwd-status=304; stored; detail=request"
    )
    assert refreshed.headers["content-length"] == str(len(refreshed.content))


@pytest.mark.parametrize(
    "headers",
    [HARD_REFRESH, {"pragma": "no-cache"}, {**FRONTIER, "cache-control": "max-stale=1, no-cache"}],
    ids=["frontier-hard-refresh", "pragma-alone", "cache-control-no-cache"],
)
def test_hard_refresh_fetches_the_whole_answer_again(
    proxy: AppClient, servlet: FrontierServlet, headers: dict[str, str]
) -> None:
    servlet.script(PATH_FORM, servlet_answer(b"v1"))
    proxy.get(PATH_FORM, headers=FRONTIER)
    servlet.script(PATH_FORM, servlet_answer(b"v2"))  # same Last-Modified: a 304 would keep v1
    reloaded = proxy.get(PATH_FORM, headers=headers)
    assert reloaded.content == b"v2"
    assert servlet.count(PATH_FORM) == 2
    upstream = servlet.last_headers(PATH_FORM)
    assert "if-modified-since" not in upstream
    # the reload is passed on, up the tree, in the proxy's own words
    assert (upstream.get("cache-control"), upstream.get("pragma")) == ("no-cache", "no-cache")
    after = proxy.get(PATH_FORM, headers=FRONTIER)
    assert after.content == b"v2" and after.headers["cache-status"].startswith("edge; hit")


def test_pragma_next_to_cache_control_is_ignored_outside_frontier_urls(
    proxy: AppClient, servlet: FrontierServlet
) -> None:
    servlet.script("/plain", servlet_answer())
    proxy.get("/plain")
    answer = proxy.get("/plain", headers=HARD_REFRESH)
    assert answer.headers["cache-status"].startswith("edge; hit")  # RFC 9111 §5.4
    assert servlet.count("/plain") == 1


def test_expiry_revalidates_with_if_modified_since(
    proxy: AppClient, servlet: FrontierServlet, clock: FakeClock
) -> None:
    servlet.script(QUERY_FORM, servlet_answer(max_age=60))
    proxy.get(QUERY_FORM, headers=FRONTIER)
    clock.advance(30)
    assert proxy.get(QUERY_FORM, headers=FRONTIER).headers["age"] == "30"
    clock.advance(31)  # 1 s stale: within frontier_client's max-stale=1
    proxy.get(QUERY_FORM, headers=FRONTIER)
    assert servlet.count(QUERY_FORM) == 1
    clock.advance(1.5)
    again = proxy.get(QUERY_FORM, headers=FRONTIER)
    assert servlet.count(QUERY_FORM) == 2
    assert servlet.last_headers(QUERY_FORM)["if-modified-since"] == LAST_MODIFIED
    assert again.content == b"<frontier>rows</frontier>"
    assert again.headers["cache-status"] == "edge; fwd=stale; fwd-status=304; stored; detail=stale"
    assert proxy.get(QUERY_FORM, headers=FRONTIER).headers["cache-status"].startswith("edge; hit")


def test_stale_if_error_serves_the_stored_answer_when_the_servlet_fails(
    proxy: AppClient, servlet: FrontierServlet, clock: FakeClock
) -> None:
    servlet.script(PATH_FORM, servlet_answer(max_age=60))
    proxy.get(PATH_FORM, headers=FRONTIER)
    clock.advance(3600)
    servlet.script(PATH_FORM, Answer(503, {}, b"down"))
    servlet.not_modified = False
    answer = proxy.get(PATH_FORM, headers=FRONTIER)
    assert answer.status_code == 200 and answer.content == b"<frontier>rows</frontier>"
    assert answer.headers["warning"].startswith("111")
    assert "stale-if-error" in answer.headers["cache-status"]


# --- client networks ---------------------------------------------------------------------------


def test_clients_outside_the_client_networks_get_403_json_but_admin_routes_answer(
    servlet: FrontierServlet, clock: FakeClock
) -> None:
    servlet.script(PATH_FORM, servlet_answer())
    with start(servlet, clock, client_networks=("10.0.0.0/8",)) as proxy:  # not 127.0.0.1
        refused = proxy.get(PATH_FORM, headers=FRONTIER)
        assert refused.status_code == 403
        body = refused.json()
        assert body["error"] == "forbidden" and "127.0.0.1" in body["detail"]
        assert body["accepted"]["setting"] == "proxy.client_networks"
        assert refused.headers["cache-status"] == "edge; detail=refused"
        assert proxy.post("/anything", content=b"x").status_code == 403
        assert proxy.get("/_outpost/healthz").status_code == 200
    assert servlet.seen == []


# --- forward mode ------------------------------------------------------------------------------


def absolute_form(app: ASGIApp) -> ASGIApp:
    """Give the app the scope h11 builds for `GET http://host:port/path`: `raw_path` (and
    `path`) carry the whole target. The header `x-test-target` names scheme://host:port."""

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = dict(scope["headers"])
            prefix = headers.get(b"x-test-target")
            if prefix is not None:
                scope = {
                    **scope,
                    "raw_path": prefix + scope["raw_path"],
                    "path": prefix.decode() + scope["path"],
                    "headers": [(k, v) for k, v in scope["headers"] if k != b"x-test-target"],
                }
        await app(scope, receive, send)

    return wrapped


@pytest.fixture
def forward(servlet: FrontierServlet, clock: FakeClock) -> Iterator[AppClient]:
    servlet.script(PATH_FORM, servlet_answer())
    destinations = ("origin.example:8000", "alias.example", "*.cern.ch")
    with start(servlet, clock, absolute_form, forward_destinations=destinations) as proxy:
        yield proxy


def via(target: str, host: str | None = None) -> dict[str, str]:
    """Headers of a forward request for `target` (scheme://host:port), as frontier_client
    writes them: Host without the port."""
    name = target.split("://")[1].split(":")[0].split("/")[0]
    return {**FRONTIER, "x-test-target": target, "host": host or name}


def test_forward_requests_to_allowed_destinations_share_entries_by_path(
    forward: AppClient, servlet: FrontierServlet
) -> None:
    first = forward.get(PATH_FORM, headers=via("http://origin.example:8000"))
    assert first.status_code == 200 and first.content == b"<frontier>rows</frontier>"
    alias = forward.get(PATH_FORM, headers=via("http://alias.example:8080"))
    assert alias.headers["cache-status"].startswith("edge; hit")
    wildcard = forward.get(PATH_FORM, headers=via("http://cmsfrontier3.cern.ch:8000"))
    assert wildcard.headers["cache-status"].startswith("edge; hit")
    plain = forward.get(PATH_FORM, headers={**FRONTIER, "host": "127.0.0.1:8081"})
    assert plain.headers["cache-status"].startswith("edge; hit")  # origin-form, to the proxy
    assert servlet.raw == [PATH_FORM]  # the path went upstream, not the destination


@pytest.mark.parametrize(
    ("target", "host"),
    [
        ("http://evil.example:8000", None),
        ("http://origin.example:9000", None),  # the target's port counts, not the Host's
        ("http://origin.example:9000", "origin.example:8000"),
        ("http://allowed.example.evil.com", None),
        ("http://cern.ch", None),
    ],
)
def test_forward_requests_to_other_destinations_get_403_json(
    forward: AppClient, servlet: FrontierServlet, target: str, host: str | None
) -> None:
    refused = forward.get(PATH_FORM, headers=via(target, host))
    assert refused.status_code == 403
    body = refused.json()
    destination = target.split("://")[1]
    if ":" not in destination:
        destination += ":80"
    assert body["detail"] == f"destination {destination} is not allowed by this proxy"
    assert body["accepted"] == {
        "setting": "proxy.forward_destinations",
        "variable": "OUTPOST_PROXY_FORWARD_DESTINATIONS",
        "destinations": ["origin.example:8000", "alias.example", "*.cern.ch"],
    }
    assert servlet.seen == []


def test_origin_form_requests_in_forward_mode_are_checked_by_their_host(
    forward: AppClient, servlet: FrontierServlet
) -> None:
    """What granian and uvicorn's httptools give the app: the path only, Host names the target."""
    assert forward.get(PATH_FORM, headers={**FRONTIER, "host": "origin.example"}).status_code == 200
    assert forward.get(PATH_FORM, headers={**FRONTIER, "host": "localhost"}).status_code == 200
    assert forward.get(PATH_FORM, headers={**FRONTIER, "host": "other:8081"}).status_code == 200
    refused = forward.get(PATH_FORM, headers={**FRONTIER, "host": "evil.example"})
    assert refused.status_code == 403 and "evil.example" in refused.json()["detail"]
    bad = forward.get(PATH_FORM, headers={**FRONTIER, "host": "origin.example@evil"})
    assert bad.status_code == 403
    assert servlet.count(PATH_FORM) == 1


def test_a_target_with_user_information_is_a_bad_request(forward: AppClient) -> None:
    answer = forward.get(PATH_FORM, headers=via("http://origin.example:8000@evil.example"))
    assert answer.status_code == 400 and answer.json()["error"] == "bad request"


def test_admin_routes_are_not_served_to_forward_requests(forward: AppClient) -> None:
    answer = forward.get("/_outpost/status", headers=via("http://origin.example:8000"))
    assert answer.status_code == 403


def test_without_forward_destinations_absolute_form_requests_get_403(
    servlet: FrontierServlet, clock: FakeClock
) -> None:
    servlet.script(PATH_FORM, servlet_answer())
    with start(servlet, clock, absolute_form) as proxy:
        refused = proxy.get(PATH_FORM, headers=via("http://origin.example:8000"))
        assert refused.status_code == 403
        assert "forward mode is off" in refused.json()["detail"]
        assert refused.json()["accepted"]["destinations"] == []
        # origin-form requests keep today's behaviour: Host is not looked at
        plain = proxy.get(PATH_FORM, headers={**FRONTIER, "host": "anything.example"})
        assert plain.status_code == 200
