"""Plain hits answered below ASGI (`proxy.protocol.HitProtocol`, `outpost proxy` on uvicorn),
on a real origin and proxy over raw sockets: the same answers as the ASGI path, in request
order on pipelined connections, HEAD without a body, the gate and directives respected, and the
keep-alive timer still closing idle connections; and requests for a URL whose fetch is in
flight waiting for it there (behind a slow upstream, `tests/support/slow_origin.py`)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import orjson
import pytest
from support.rawhttp import Answer, Connection, get
from support.stack import Server, Stack

from origin.sample import HLT_GLOBAL_TAG

RESOLVE = f"/v1/resolve/{HLT_GLOBAL_TAG}?run=500"
FAST_HITS = "outpost_proxy_fast_hits_total"


@pytest.fixture
def tree(stack: Stack, sample_sqlite: str) -> Iterator[tuple[Server, Server, list[str]]]:
    """An origin and one node proxy; the payload paths of run 500, each fetched once (cached)."""
    origin = stack.origin(sample_sqlite)
    node = stack.proxy("node", [origin.url], env={"OUTPOST_PROXY_KEEPALIVE_SECONDS": "2"})
    records = httpx.get(node.url + RESOLVE).json()["records"]
    paths = [f"/v1/payloads/{r['payload']}" for r in records if r["payload"]][:4]
    for path in paths:
        assert httpx.get(node.url + path).status_code == 200
    yield origin, node, paths


def test_hits_are_written_below_asgi_with_the_answer_the_asgi_path_gives(
    tree: tuple[Server, Server, list[str]],
) -> None:
    origin, node, paths = tree
    before = node.metric(FAST_HITS)
    fast = Connection(node.url)
    fast.send(get(paths[0]))
    fast_answer = fast.answer()
    assert node.metric(FAST_HITS) == before + 1
    asgi = Connection(node.url)
    asgi.send(get(paths[0], version="1.0"))  # HTTP/1.0: the ASGI path
    asgi_answer = asgi.answer()
    assert node.metric(FAST_HITS) == before + 1
    assert fast_answer.status == asgi_answer.status == 200
    assert fast_answer.body == asgi_answer.body == httpx.get(origin.url + paths[0]).content

    def comparable(answer: Answer) -> list[tuple[str, str]]:  # Age may tick between the two
        return [
            (k, v.rsplit("ttl=", 1)[0]) for k, v in answer.headers if k not in ("age", "connection")
        ]

    assert comparable(fast_answer) == comparable(asgi_answer)
    assert fast_answer.header("cache-status").startswith("node; hit; ttl=")
    fast.close()
    asgi.close()


def test_the_resolve_answer_is_a_hit_below_asgi_in_each_encoding(
    tree: tuple[Server, Server, list[str]],
) -> None:
    """The origin's JSON varies on Accept-Encoding; at a run start every node asks for the
    run's resolve answer, so its stored variants must take the hit path too."""
    _, node, _ = tree
    connection = Connection(node.url)
    gzip = "Accept-Encoding: gzip, deflate, br\r\n"  # what Locust's nodes send
    for extra in (gzip, ""):
        connection.send(get(RESOLVE, extra=extra))  # the first of each variant: a miss
        assert connection.answer().status == 200
    before = node.metric(FAST_HITS)
    connection.send(get(RESOLVE, extra=gzip), get(RESOLVE))
    zipped, plain = connection.answer(), connection.answer()
    assert node.metric(FAST_HITS) == before + 2
    assert zipped.header("content-encoding") == "gzip"
    assert "content-encoding" not in dict(plain.headers)
    assert orjson.loads(plain.body)["run"] == 500
    assert zipped.header("cache-status").startswith("node; hit")
    connection.close()


def test_pipelined_requests_are_answered_in_order_around_a_miss(
    tree: tuple[Server, Server, list[str]],
) -> None:
    _, node, paths = tree
    bodies = {path: httpx.get(node.url + path).content for path in paths}
    miss = f"/v1/resolve/{HLT_GLOBAL_TAG}?run=502"  # never fetched: through ASGI and upstream
    order = [paths[0], miss, paths[1], paths[2], paths[0]]
    connection = Connection(node.url)
    connection.send(*(get(path) for path in order))  # one write: the server reads them at once
    answers = [connection.answer() for _ in order]
    assert [a.status for a in answers] == [200] * len(order)
    for answer, path in zip(answers, order, strict=True):
        if path != miss:
            assert answer.body == bodies[path], path
    assert answers[1].header("cache-status").endswith("stored")  # the miss, in its place
    assert orjson.loads(answers[1].body)["run"] == 502
    connection.close()


def test_a_head_hit_has_the_length_and_no_body(tree: tuple[Server, Server, list[str]]) -> None:
    _, node, paths = tree
    length = len(httpx.get(node.url + paths[1]).content)
    following = httpx.get(node.url + paths[2]).content
    before = node.metric(FAST_HITS)
    connection = Connection(node.url)
    connection.send(get(paths[1], method="HEAD"), get(paths[2]))
    head = connection.answer(head_only=True)
    after_head = connection.answer()  # read right behind the HEAD: no stray body between
    assert head.status == after_head.status == 200
    assert int(head.header("content-length")) == length
    assert after_head.body == following
    assert node.metric(FAST_HITS) == before + 2
    connection.close()


def test_directives_and_http_1_0_go_through_the_asgi_path(
    tree: tuple[Server, Server, list[str]],
) -> None:
    _, node, paths = tree
    before = node.metric(FAST_HITS)
    connection = Connection(node.url)
    connection.send(get(RESOLVE, extra="Cache-Control: no-cache\r\n"))
    revalidated = connection.answer()
    assert "fwd=" in revalidated.header("cache-status").rsplit(",", 1)[-1]  # went upstream
    connection.send(get(paths[0], extra="Cache-Control: max-stale=1\r\n"))  # harmless: fast
    assert connection.answer().header("cache-status").startswith("node; hit")
    assert node.metric(FAST_HITS) == before + 1
    old = Connection(node.url)
    old.send(get(paths[0], version="1.0"))
    assert old.answer().status == 200
    assert node.metric(FAST_HITS) == before + 1
    connection.close()
    old.close()


def test_a_client_outside_the_client_networks_is_refused_a_cached_url(
    stack: Stack, sample_sqlite: str
) -> None:
    origin = stack.origin(sample_sqlite)
    node = stack.proxy("node", [origin.url], env={"OUTPOST_PROXY_CLIENT_NETWORKS": "127.0.0.2/32"})
    warm = Connection(node.url, source="127.0.0.2")
    warm.send(get(RESOLVE))
    payload = f"/v1/payloads/{orjson.loads(warm.answer().body)['records'][0]['payload']}"
    for _ in range(2):  # a miss, then a hit below ASGI for the client the gate admitted
        warm.send(get(payload))
        assert warm.answer().status == 200
    assert node.metric(FAST_HITS) == 1
    outsider = Connection(node.url, source="127.0.0.1")
    outsider.send(get(payload))
    refused = outsider.answer()
    assert refused.status == 403
    assert b"client_networks" in refused.body
    assert node.metric(FAST_HITS) == 1
    warm.close()
    outsider.close()


def test_the_keepalive_timer_closes_idle_connections_after_hits(
    tree: tuple[Server, Server, list[str]],
) -> None:
    _, node, paths = tree  # keepalive_seconds = 2
    connection = Connection(node.url)
    connection.send(get(paths[0]), get(paths[1]))  # two hits in one read: one timer, not two
    connection.answer()
    connection.answer()
    time.sleep(1.2)
    connection.send(get(paths[2]))
    assert connection.answer().status == 200
    time.sleep(1.2)  # 2.4 s after the first hits, 1.2 s after the last one
    assert not connection.closed_by_server()
    time.sleep(2.0)
    assert connection.closed_by_server()
    connection.close()


# --- requests waiting below ASGI for a fetch already in flight ---------------------------------

COLLAPSED_BELOW = "outpost_proxy_fast_collapsed_total"
WAITERS = 12


@pytest.fixture
def slow_node(stack: Stack) -> Iterator[tuple[str, Server]]:
    """`tests/support/slow_origin.py` on loopback and one node proxy in front of it."""
    upstream = stack.slow_origin()
    env = {"OUTPOST_PROXY_COALESCE_TIMEOUT_SECONDS": "3"}
    yield upstream, stack.proxy("node", [upstream], env=env)


def _storm(node: Server, path: str, lead: float = 0.4) -> tuple[Answer, list[Answer]]:
    """One request for `path`, then, while its fetch is in flight, WAITERS more on their own
    connections; the first answer and the others'."""
    leader = Connection(node.url)
    leader.send(get(path))
    time.sleep(lead)  # the leader's fetch is under way
    others = [Connection(node.url) for _ in range(WAITERS)]
    for connection in others:
        connection.send(get(path))
    answers = [connection.answer() for connection in others]
    first = leader.answer()
    for connection in [leader, *others]:
        connection.close()
    return first, answers


def test_requests_for_a_url_in_flight_wait_below_asgi_for_its_one_fetch(
    slow_node: tuple[str, Server],
) -> None:
    upstream, node = slow_node
    first, waiters = _storm(node, "/slow/a?delay=1.5")
    assert httpx.get(f"{upstream}/count/a").json() == 1
    assert node.metric(COLLAPSED_BELOW) == WAITERS
    assert node.metric("outpost_proxy_requests_total", result="collapsed") == WAITERS
    assert first.header("cache-status") == "node; fwd=miss; fwd-status=200; stored"
    for answer in waiters:
        assert answer.status == 200
        assert answer.body == first.body
        assert answer.header("cache-status") == "node; fwd=miss; fwd-status=200; stored; collapsed"
        same = [(k, v) for k, v in answer.headers if k not in ("cache-status", "age")]
        assert same == [(k, v) for k, v in first.headers if k not in ("cache-status", "age")]
    again = Connection(node.url)  # stored: now a plain hit
    again.send(get("/slow/a?delay=1.5"))
    assert again.answer().header("cache-status").startswith("node; hit; ttl=")
    again.close()


def test_a_known_clients_miss_starts_its_fetch_below_asgi_and_the_others_join_it(
    slow_node: tuple[str, Server],
) -> None:
    """Once the gate knows the client, the first request's head starts the fetch in the
    protocol (no ASGI cycle), and it is answered there with the fetch's own answer."""
    upstream, node = slow_node
    assert httpx.get(f"{node.url}/slow/known").status_code == 200  # the gate admits the client
    first, waiters = _storm(node, "/slow/led?delay=1")
    assert httpx.get(f"{upstream}/count/led").json() == 1
    assert node.metric("outpost_proxy_fast_led_total") == 1
    assert node.metric(COLLAPSED_BELOW) == WAITERS
    assert first.header("cache-status") == "node; fwd=miss; fwd-status=200; stored"
    assert {a.body for a in waiters} == {first.body}
    assert all(a.header("cache-status").endswith("; collapsed") for a in waiters)


def test_a_request_pipelined_behind_a_waiting_one_is_answered_after_it(
    slow_node: tuple[str, Server],
) -> None:
    _, node = slow_node
    warm = httpx.get(f"{node.url}/slow/warm").content  # stored: a hit below ASGI
    leader = Connection(node.url)
    leader.send(get("/slow/b?delay=1"))
    time.sleep(0.3)
    connection = Connection(node.url)
    connection.send(get("/slow/b?delay=1"), get("/slow/warm"))  # one write
    waited, behind = connection.answer(), connection.answer()
    assert orjson.loads(waited.body)["name"] == "b"
    assert waited.header("cache-status").endswith("collapsed")
    assert behind.body == warm
    assert leader.answer().body == waited.body
    assert node.metric(COLLAPSED_BELOW) == 1
    leader.close()
    connection.close()


def test_waiters_of_a_failed_fetch_get_what_the_engine_gives_its_own_waiters(
    slow_node: tuple[str, Server],
) -> None:
    """A 404 without freshness is not stored: the protocol hands its waiters to the ASGI app
    with the fetch's outcome, which passes the one answer on to each, without asking upstream
    again."""
    upstream, node = slow_node
    first, waiters = _storm(node, "/slow/down?delay=1&status=404")
    assert httpx.get(f"{upstream}/count/down").json() == 1
    assert node.metric(COLLAPSED_BELOW) == 0
    assert [a.status for a in waiters] == [first.status] * WAITERS == [404] * WAITERS
    assert {a.body for a in waiters} == {first.body}


def test_waiters_give_up_after_the_coalesce_timeout_as_the_engine_does(
    slow_node: tuple[str, Server],
) -> None:
    _, node = slow_node
    started = time.monotonic()
    first, waiters = _storm(node, "/slow/late?delay=4", lead=0.2)
    assert [a.status for a in waiters] == [504] * WAITERS
    assert "longer than 3.0 s" in waiters[0].body.decode()
    assert first.status == 504  # the leader waits as long (its fetch goes on)
    assert time.monotonic() - started < 4.5
    assert node.metric(COLLAPSED_BELOW) == 0


def test_waiters_that_select_another_variant_get_their_own(
    slow_node: tuple[str, Server],
) -> None:
    """The fetch is made with the leader's Accept-Encoding; a waiter that does not accept gzip
    must not be given the gzip variant it stored, below ASGI or through the engine."""
    upstream, node = slow_node
    path = "/slow/v?delay=1&vary=1"
    leader = Connection(node.url)
    leader.send(get(path, extra="Accept-Encoding: gzip\r\n"))
    time.sleep(0.3)
    plain = Connection(node.url)
    plain.send(get(path))
    old = Connection(node.url)  # HTTP/1.0: through the ASGI app and the engine
    old.send(get(path, version="1.0"))
    zipped = leader.answer()
    assert zipped.header("content-encoding") == "gzip"
    for connection in (plain, old):
        answer = connection.answer()
        assert answer.status == 200
        assert "content-encoding" not in dict(answer.headers)
        assert orjson.loads(answer.body)["coding"] == "identity"
    for connection in (leader, plain, old):
        connection.close()
    assert httpx.get(f"{upstream}/count/v").json() == 2
