"""The blocking client over a fake network (httpx.MockTransport): failover, cool-down, back-off,
typed errors, integrity, concurrency and configuration. No real sockets, no sleeping."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
from client.fakenet import (
    GT,
    NODE,
    ORIGIN,
    PAYLOADS,
    SITE,
    Clock,
    Network,
    corrupt,
    refuse,
    serve,
    status,
    time_out,
    without,
)

from outpost.client import (
    AllEndpointsFailed,
    BadRequest,
    Client,
    ClientSettings,
    ConfigError,
    Endpoint,
    IntegrityError,
    NotFound,
)

SETTINGS = ClientSettings(rounds=2, backoff=0.5, backoff_cap=4.0, cooldown=30.0)


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def client(
    network: Network, clock: Clock, rng: random.Random, sleeps: list[float]
) -> Iterator[Client]:
    with Client(
        servers=[ORIGIN],
        proxies=[NODE, SITE],
        settings=SETTINGS,
        transport=network.transport(),
        clock=clock,
        sleep=sleeps.append,
        rng=rng,
    ) as client:
        yield client


def test_fetch_run_resolves_then_fetches_every_payload_once_and_verified(
    client: Client, network: Network
) -> None:
    conditions = client.fetch_run(GT, 500)
    assert conditions.resolution.run == 500
    assert dict(conditions.payloads) == PAYLOADS
    assert network.log[0] == f"{NODE}/v1/resolve/{GT}?run=500"
    assert sorted(network.log[1:]) == sorted(f"{NODE}/v1/payloads/{d}" for d in PAYLOADS)
    assert client.stats.served_by == {NODE: 1 + len(PAYLOADS)}


def test_every_get_goes_to_the_canonical_url_under_the_endpoint_base_url(
    network: Network,
) -> None:
    network.behaviours["http://site:8080"] = serve
    with Client(proxies="http://site:8080/outpost/", transport=network.transport()) as client:
        client.resolve(GT, 500, lumi=7)
        client.payload(next(iter(PAYLOADS)).upper())
    assert network.log == [
        f"http://site:8080/outpost/v1/resolve/{GT}?lumi=7&run=500",
        f"http://site:8080/outpost/v1/payloads/{next(iter(PAYLOADS))}",
    ]


@pytest.mark.parametrize("failure", [refuse, time_out, status(502), status(503)])
def test_a_failing_node_proxy_is_skipped_for_the_site_proxy(
    client: Client, network: Network, failure: object
) -> None:
    network.behaviours[NODE] = failure  # type: ignore[assignment]
    assert client.resolve(GT, 1).run == 1
    assert network.hosts() == [NODE, SITE]
    assert sum(client.stats.failures.values()) == 1


def test_a_failed_endpoint_is_not_asked_again_until_its_cool_down_ends(
    client: Client, network: Network, clock: Clock
) -> None:
    network.behaviours[NODE] = refuse
    client.resolve(GT, 1)
    clock.now += 29
    client.fetch_run(GT, 2)
    assert network.hosts().count(NODE) == 1  # only the first GET tried it
    network.behaviours[NODE] = serve
    clock.now += 1
    client.resolve(GT, 3)
    assert network.hosts()[-1] == NODE


def test_without_proxies_the_client_fails_over_between_servers(network: Network) -> None:
    network.behaviours[NODE] = status(500)
    with Client(servers=f"{NODE},{ORIGIN}", transport=network.transport()) as client:
        assert client.payload(next(iter(PAYLOADS))) == next(iter(PAYLOADS.values()))
    assert network.hosts() == [NODE, ORIGIN]


def test_a_load_balanced_group_is_exhausted_before_the_next_entry(network: Network) -> None:
    network.behaviours |= {"http://a:1": refuse, "http://b:1": refuse}
    firsts = set()
    for seed in range(20):
        network.log.clear()
        with Client(
            proxies=f"http://a:1|http://b:1,{SITE}",
            transport=network.transport(),
            rng=random.Random(seed),
        ) as client:
            client.resolve(GT, 1)
        assert sorted(network.hosts()[:2]) == ["http://a:1", "http://b:1"]
        assert network.hosts()[2:] == [SITE]
        firsts.add(network.hosts()[0])
    assert firsts == {"http://a:1", "http://b:1"}  # clients spread over the group


def test_an_unknown_global_tag_is_not_found_at_once_with_the_servers_body(
    client: Client, network: Network
) -> None:
    with pytest.raises(NotFound) as caught:
        client.resolve("NO_SUCH_GT", 1)
    assert network.hosts() == [NODE]
    assert caught.value.status == 404
    assert caught.value.body == {
        "error": "not found",
        "detail": "global tag 'NO_SUCH_GT' does not exist",
        "accepted": None,
    }
    assert caught.value.endpoint == NODE


def test_a_4xx_after_a_failover_still_names_the_failed_attempt(
    client: Client, network: Network
) -> None:
    network.behaviours[NODE] = refuse
    with pytest.raises(NotFound) as caught:
        client.payload("0" * 64)
    assert caught.value.endpoint == SITE
    assert [a.endpoint for a in caught.value.attempts] == [NODE]


def test_a_malformed_query_is_refused_without_any_get(client: Client, network: Network) -> None:
    with pytest.raises(BadRequest):
        client.resolve("bad name", 1)
    with pytest.raises(BadRequest):
        client.payload("not-a-hash")
    assert network.log == []


def test_corrupted_payload_bytes_are_fetched_again_elsewhere_and_counted(
    client: Client, network: Network
) -> None:
    network.behaviours[NODE] = corrupt
    conditions = client.fetch_run(GT, 500)
    assert dict(conditions.payloads) == PAYLOADS
    assert client.stats.integrity_errors >= 1
    assert client.stats.served_by[SITE] >= len(PAYLOADS) - 1


def test_if_every_endpoint_serves_bad_bytes_the_error_is_an_integrity_error(
    network: Network, sleeps: list[float]
) -> None:
    network.behaviours |= {NODE: corrupt, ORIGIN: corrupt}
    with (
        Client(
            servers=ORIGIN, proxies=NODE, transport=network.transport(), sleep=sleeps.append
        ) as client,
        pytest.raises(IntegrityError, match="hash to"),
    ):
        client.payload(next(iter(PAYLOADS)))


def test_when_everything_is_down_the_client_backs_off_then_names_every_endpoint(
    client: Client, network: Network, sleeps: list[float]
) -> None:
    network.behaviours |= {NODE: refuse, SITE: time_out, ORIGIN: status(503)}
    with pytest.raises(AllEndpointsFailed) as caught:
        client.resolve(GT, 1)
    assert type(caught.value) is AllEndpointsFailed
    assert network.hosts() == [NODE, SITE, ORIGIN] * 2  # two rounds
    assert len(sleeps) == 1 and 0.25 <= sleeps[0] <= 0.5  # one jittered back-off
    assert caught.value.endpoints == (NODE, SITE, ORIGIN)
    assert [a.kind for a in caught.value.attempts] == ["connect", "timeout", "status"] * 2
    for endpoint in (NODE, SITE, ORIGIN):
        assert endpoint in str(caught.value)


def test_fetch_run_fetches_at_most_concurrency_payloads_at_once(network: Network) -> None:
    lock, in_flight, most = threading.Lock(), [0], [0]

    def slow(request: httpx.Request) -> httpx.Response:
        with lock:
            in_flight[0] += 1
            most[0] = max(most[0], in_flight[0])
        time.sleep(0.05)  # lets the workers overlap; this is not a back-off
        with lock:
            in_flight[0] -= 1
        return serve(request)

    network.behaviours[ORIGIN] = slow
    settings = ClientSettings(concurrency=2)
    with Client(servers=ORIGIN, settings=settings, transport=network.transport()) as client:
        assert dict(client.fetch_run(GT, 1).payloads) == PAYLOADS
    assert most[0] == 2


def test_a_payload_that_fails_everywhere_fails_the_whole_run(network: Network) -> None:
    missing = next(iter(PAYLOADS))

    network.behaviours[ORIGIN] = without(missing)
    with (
        Client(servers=ORIGIN, transport=network.transport()) as client,
        pytest.raises(AllEndpointsFailed) as caught,
    ):
        client.fetch_run(GT, 1)
    assert caught.value.path == f"/v1/payloads/{missing}"
    assert {a.detail for a in caught.value.attempts} == {"status 404 for a resource known to exist"}


def test_a_404_for_a_payload_the_resolve_answer_named_fails_over(
    client: Client, network: Network
) -> None:
    """A cache that answers 404 for a payload the run needs is behind or lying: the next
    endpoint is asked, and the run is configured from it."""
    missing = next(iter(PAYLOADS))

    network.behaviours[NODE] = without(missing)
    conditions = client.fetch_run(GT, 1)
    assert missing in conditions.payloads
    assert client.stats.failures["status"] == 1


def test_a_404_for_a_payload_asked_by_hash_alone_is_not_found(
    client: Client, network: Network
) -> None:
    with pytest.raises(NotFound):
        client.payload("ab" * 32)


def test_closing_the_client_closes_its_connection_pool(network: Network) -> None:
    with Client(servers=ORIGIN, transport=network.transport()) as client:
        assert not client.closed
    assert client.closed


# --- configuration -----------------------------------------------------------------------------


def test_from_env_reads_proxies_servers_and_tuning() -> None:
    client = Client.from_env(
        {
            "OUTPOST_PROXIES": "http://node:8081,http://a:1|http://b:1",
            "OUTPOST_SERVERS": "http://origin:8000",
            "OUTPOST_CLIENT_TIMEOUT": "2.5",
            "OUTPOST_CLIENT_CONCURRENCY": "4",
        },
        rng=random.Random(1),
    )
    with client:
        urls = [e.url for e in client.endpoints]
        assert urls[0] == "http://node:8081" and urls[3] == "http://origin:8000"
        assert sorted(urls[1:3]) == ["http://a:1", "http://b:1"]
        assert [e.role for e in client.endpoints] == ["proxy"] * 3 + ["server"]
        assert (client.settings.timeout, client.settings.concurrency) == (2.5, 4)


def test_from_env_without_any_endpoint_fails_naming_the_variables() -> None:
    with pytest.raises(ConfigError, match="OUTPOST_SERVERS"):
        Client.from_env({})


@pytest.mark.parametrize(
    ("variable", "value", "problem"),
    [
        ("OUTPOST_CLIENT_ROUNDS", "0", "client.rounds=0"),
        ("OUTPOST_CLIENT_TIMEOUT", "soon", "client.timeout='soon'"),
        ("OUTPOST_SERVERS", "origin:8000", "servers: 'origin:8000'"),
    ],
)
def test_a_bad_setting_fails_at_start_naming_the_key(
    variable: str, value: str, problem: str
) -> None:
    environ = {"OUTPOST_SERVERS": "http://origin:8000", variable: value}
    with pytest.raises(ConfigError, match=problem):
        Client.from_env(environ)


def test_an_endpoint_cannot_be_both_proxy_and_server() -> None:
    with pytest.raises(ConfigError, match="both a proxy and a server"):
        Client(servers=[ORIGIN], proxies=[NODE, ORIGIN])


@pytest.mark.parametrize("field", ["timeout", "connect_timeout"])
def test_timeouts_must_be_positive(field: str) -> None:
    with pytest.raises(ConfigError, match=f"client.{field}=0"):
        ClientSettings(**{field: 0})


def test_plan_shows_the_order_the_next_request_would_take(
    client: Client, network: Network, clock: Clock
) -> None:
    assert client.plan() == client.endpoints
    network.behaviours[NODE] = refuse
    client.resolve(GT, 1)
    assert [e.url for e in client.plan()] == [SITE, ORIGIN, NODE]
    assert client.plan()[-1] == Endpoint(NODE, "proxy")
    clock.now += 30
    assert client.plan() == client.endpoints
