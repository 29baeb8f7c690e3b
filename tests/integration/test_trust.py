"""Nothing one client sends changes what another client receives: real processes on loopback.

A farm in small (origin over the sample data, a site proxy, a node proxy whose upstreams are the
site then the origin) takes the requests of the trust report one by one, then a hypothesis fuzz
of raw request targets and fields sent to either tier; after every hostile request, every
victim URL must still give every plain client the bytes it gave before. A careless upstream
(`tests/support/slow_origin.py`: reflects request fields, sets cookies, answers slowly) shows
what a shared fetch forwards and what a waiting request receives.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.fnkit import frontier_url
from support.rawhttp import Answer, Connection, get
from support.stack import Server, Stack

from origin.sample import HLT_GLOBAL_TAG

QUERY = "SELECT tag_name, since, payload_hash FROM iovs ORDER BY tag_name, since"
FRONTIER = frontier_url(QUERY)
RESOLVE = f"/v1/resolve/{HLT_GLOBAL_TAG}?run=500"
UPSTREAM_ERRORS = "outpost_proxy_upstream_errors_total"
FRONTIER_ID = "x-frontier-id: test 1.0 pid=1; user\r\n"


class Farm:
    """The servers, the victim URLs, and the bytes each victim first gave each tier and coding
    (a plain class: hypothesis prints a dataclass field by field, bodies and all)."""

    def __init__(self, origin: Server, site: Server, node: Server, victims: list[str]) -> None:
        self.origin, self.site, self.node, self.victims = origin, site, node, victims
        self.seen: dict[tuple[str, str, str], bytes] = {}
        self.http = httpx.Client(timeout=10, trust_env=False)  # one pool: reads stay cheap

    def __repr__(self) -> str:
        return f"Farm(node={self.node.url}, site={self.site.url}, origin={self.origin.url})"

    def read(self, tier: Server, url: str, coding: str) -> bytes:
        headers = {"accept-encoding": coding, "x-frontier-id": "victim"}
        answer = self.http.get(tier.url + url, headers=headers)
        if answer.status_code != 200:
            return f"status {answer.status_code}: {answer.text[:200]}".encode()
        return answer.content  # httpx undoes gzip: both variants must hold the same bytes

    def unchanged(self) -> None:
        """Every victim, through either tier and in either coding, gives what it first gave."""
        changed = []
        for (tier, url, coding), expected in self.seen.items():
            got = self.read(self.node if tier == "node" else self.site, url, coding)
            if got != expected:
                changed.append(f"{tier} {url[:60]} {coding}: {got[:120]!r}")
        assert not changed, "\n".join(changed)


@pytest.fixture(scope="module")
def farm(
    tmp_path_factory: pytest.TempPathFactory, sqlite_templates: dict[bool, Path]
) -> Iterator[Farm]:
    root = tmp_path_factory.mktemp("farm")
    shutil.copyfile(sqlite_templates[True], root / "conditions.sqlite")
    stack = Stack(root)
    try:
        env = {"OUTPOST_ORIGIN_FRONTIER_REQUIRE_ID": "true"}
        origin = stack.origin(f"sqlite:///{root / 'conditions.sqlite'}", env=env)
        site = stack.proxy("site", [origin.url])
        node = stack.proxy("node", [site.url, origin.url], parent=site.url)
        records = httpx.get(origin.url + RESOLVE, timeout=10).json()["records"]
        payload = next(f"/v1/payloads/{r['payload']}" for r in records if r["payload"])
        tag = next(r["tag"] for r in records)
        victims = [RESOLVE, "/v1/globaltags", f"/v1/tags/{tag}", payload, FRONTIER]
        farm = Farm(origin, site, node, victims)
        for tier_name, tier in (("node", node), ("site", site)):
            for url in victims:
                for coding in ("identity", "gzip"):
                    farm.seen[(tier_name, url, coding)] = farm.read(tier, url, coding)
        yield farm
        farm.http.close()
    finally:
        stack.close()


def send(tier: Server, request: str) -> Answer:
    connection = Connection(tier.url)
    try:
        connection.send(request)
        return connection.answer(head_only=request.startswith("HEAD "))
    finally:
        connection.close()


# --- the report, item by item --------------------------------------------------------------


@pytest.mark.parametrize("separator", ["%2F", "%2f"])
def test_an_escaped_slash_cannot_replace_the_frontier_answer(farm: Farm, separator: str) -> None:
    spoof = FRONTIER.replace("/Frontier/", f"/Frontier{separator}", 1)
    for tier in (farm.node, farm.site):
        answer = send(tier, get(spoof, extra=FRONTIER_ID + "cache-control: max-age=0\r\n"))
        assert b"global_error" in answer.body or answer.status >= 400  # its own answer
    farm.unchanged()


def test_a_request_without_frontier_id_cannot_store_the_servlets_complaint(farm: Farm) -> None:
    """The origin requires X-Frontier-Id; a client without one, asking for a refresh, must not
    have "X-frontier-id header missing" stored under the shared key."""
    answer = send(
        farm.node, get(FRONTIER, extra="cache-control: max-age=0\r\npragma: no-cache\r\n")
    )
    assert b"header missing" not in answer.body  # the proxy identified its shared fetch
    direct = send(farm.origin, get(FRONTIER, extra="cache-control: max-age=0\r\n"))
    assert b"header missing" in direct.body
    assert direct.header("cache-control") == "no-store"  # depends on the request: never shared
    farm.unchanged()


def test_a_request_directive_cannot_rewrite_the_stored_entry(farm: Farm) -> None:
    extra = FRONTIER_ID + "cache-control: max-age=0, max-stale=999999999\r\n"
    send(farm.node, get(FRONTIER, extra=extra))
    plain = send(farm.node, get(FRONTIER, extra=FRONTIER_ID))
    assert "999999999" not in plain.header("cache-control")
    farm.unchanged()


def test_a_crlf_in_the_url_is_refused_and_cannot_forge_a_log_line(farm: Farm) -> None:
    target = "/v1/globaltags%0d%0aX-Injected:%20yes"
    for tier in (farm.node, farm.site):
        answer = send(tier, get(target))
        assert answer.status == 400
        assert orjson.loads(answer.body)["error"] == "bad request"
    for server in (farm.node, farm.site, farm.origin):
        lines = server.log.read_text(errors="replace").splitlines()
        assert not [line for line in lines if line.startswith("X-Injected")]
        assert "Traceback" not in server.log.read_text(errors="replace")


# --- the fuzz ------------------------------------------------------------------------------

SPELLINGS = {
    "as is": lambda url: url,
    "escaped slash": lambda url: url.replace("/", "%2F", 2).replace("%2F", "/", 1),
    "escaped slash, lower": lambda url: url.replace("/", "%2f", 2).replace("%2f", "/", 1),
    "crlf": lambda url: url.split("?")[0] + "%0d%0aX-Injected:%20yes",
    "nul": lambda url: url + "%00",
    "extra parameter": lambda url: url + ("&" if "?" in url else "?") + "x=1",
    "double slash": lambda url: "/" + url,
    "dot segment": lambda url: "/v1/../" + url.removeprefix("/"),
    "escaped letter": lambda url: url.replace("v1", "v%31", 1),
    "trailing slash": lambda url: url.split("?")[0] + "/",
}
FIELDS = [
    "cache-control: max-age=0",
    "cache-control: no-cache",
    "cache-control: no-store",
    "cache-control: max-stale=999999999, max-age=0",
    "cache-control: only-if-cached",
    "cache-control: s-maxage=999999, public, immutable",
    "pragma: no-cache",
    "x-forwarded-host: evil.example",
    "x-forwarded-proto: gopher",
    "x-original-url: /v1/globaltags",
    "x-rewrite-url: /v1/globaltags",
    "cookie: a=b; ",
    "authorization: Bearer nobody",
    "accept-encoding: gzip;q=0, *",
    "accept-encoding: x-evil",
    "accept: text/html ",
    "accept-language: de ",
    "x-frontier-id: ",
    "x-a: v ",
    "range: bytes=0-3",
    "if-none-match: *",
    "if-modified-since: Thu, 01 Jan 2037 00:00:00 GMT",
    "via: 1.1 site",
    "outpost-epoch: 9223372036854775807",
    "host: evil.example",
]


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    victim=st.integers(0, 4),
    spelling=st.sampled_from(sorted(SPELLINGS)),
    fields=st.lists(st.sampled_from(FIELDS), max_size=4, unique=True),
    method=st.sampled_from(["GET", "GET", "HEAD", "POST", "DELETE"]),
    tier=st.sampled_from(["node", "site"]),
)
def test_no_hostile_request_changes_what_other_clients_receive(
    farm: Farm, victim: int, spelling: str, fields: list[str], method: str, tier: str
) -> None:
    target = SPELLINGS[spelling](farm.victims[victim])
    head = "".join(f"{field}\r\n" for field in fields)
    if not any(f.startswith("host:") for f in fields):
        head = "host: node\r\n" + head
    body = "{}" if method in ("POST", "DELETE") else ""
    if body:
        head += f"content-length: {len(body)}\r\n"
    request = f"{method} {target} HTTP/1.1\r\n{head}\r\n{body}"
    answer = send(farm.node if tier == "node" else farm.site, request)
    assert answer.status < 500 or answer.status in (502, 503, 504)  # never an internal error
    farm.unchanged()


# --- a careless upstream -------------------------------------------------------------------


def blamed(node: Server, upstream: str) -> float:
    """Failed attempts the proxy counted against `upstream` (its circuit breaker's input)."""
    kinds = ("connect", "timeout", "status", "integrity")
    return sum(node.metric(UPSTREAM_ERRORS, upstream=upstream, kind=kind) for kind in kinds)


@pytest.fixture
def careless(stack: Stack) -> Iterator[tuple[str, Server]]:
    """`tests/support/slow_origin.py` on loopback and one node proxy in front of it."""
    upstream = stack.slow_origin()
    yield upstream, stack.proxy("node", [upstream])


def test_a_shared_fetch_forwards_no_field_an_upstream_could_reflect(
    careless: tuple[str, Server],
) -> None:
    _, node = careless
    hostile = (
        "x-forwarded-host: evil.example\r\nx-forwarded-proto: gopher\r\n"
        "x-original-url: /admin\r\nuser-agent: attacker\r\naccept-language: de\r\n"
    )
    first = send(node, get("/reflect/a", extra=hostile))
    received = orjson.loads(first.body)["headers"]
    assert not {"x-forwarded-host", "x-forwarded-proto", "x-original-url"} & set(received)
    assert received["user-agent"] == "outpost-proxy/node"
    assert received["accept-language"] == "de"
    again = send(node, get("/reflect/a"))
    assert again.body == first.body and "; hit" in again.header("cache-status")


def test_no_cookie_is_stored_replayed_upstream_or_handed_to_a_waiter(
    careless: tuple[str, Server],
) -> None:
    upstream, node = careless
    leader = Connection(node.url)
    leader.send(get("/reflect/c?delay=1&cookie=1"))
    time.sleep(0.3)  # the leader's fetch is under way
    waiter = Connection(node.url)
    waiter.send(get("/reflect/c?delay=1&cookie=1"))
    led, waited = leader.answer(), waiter.answer()
    leader.close()
    waiter.close()
    assert led.header("set-cookie") == "session=1; Path=/"  # its own fetch's answer
    assert "set-cookie" not in dict(waited.headers)  # not the leader's session
    assert waited.body == led.body
    later = send(node, get("/reflect/c?delay=1&cookie=1"))  # not stored: fetched again
    assert "cookie" not in orjson.loads(later.body)["headers"]  # and no cookie kept to send
    assert httpx.get(f"{upstream}/count/c").json() == 2


def test_a_leaders_unsendable_field_fails_no_waiter(careless: tuple[str, Server]) -> None:
    """`X-A: v␠` and `Accept-Language: de␠` on the first request: the shared fetch carries
    neither as sent, so its waiters all get the answer and no upstream is blamed."""
    upstream, node = careless
    path = "/slow/leader?delay=1"
    leader = Connection(node.url)
    leader.send(get(path, extra="x-a: v \r\naccept-language: de \r\n"))
    time.sleep(0.3)
    waiters = [Connection(node.url) for _ in range(20)]
    for connection in waiters:
        connection.send(get(path))
    answers = [connection.answer() for connection in waiters]
    leader.answer()
    for connection in [leader, *waiters]:
        connection.close()
    assert [a.status for a in answers] == [200] * 20
    assert (
        node.metric("outpost_proxy_upstream_errors_total", upstream=upstream, kind="connect") == 0
    )
    assert httpx.get(f"{upstream}/count/leader").json() == 1


def test_a_cookie_request_with_an_unsendable_value_is_answered_and_blames_no_upstream(
    careless: tuple[str, Server],
) -> None:
    """A request with a Cookie is this client's own (never stored): its `a=b;␠` is trimmed."""
    upstream, node = careless
    answer = send(node, get("/reflect/own", extra="cookie: a=b; \r\n"))
    assert answer.status == 200
    assert orjson.loads(answer.body)["headers"]["cookie"] == "a=b;"
    assert (
        node.metric("outpost_proxy_upstream_errors_total", upstream=upstream, kind="connect") == 0
    )
