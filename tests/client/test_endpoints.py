"""Endpoint lists, their order, cool-downs and back-off: pure, no network, no sleeping."""

from __future__ import annotations

import random
import re

import pytest

from outpost.client import ConfigError, Endpoint, Group
from outpost.client.endpoints import CoolDown, backoff_delay, parse_endpoints, preference


def proxy(url: str) -> Endpoint:
    return Endpoint(url, "proxy")


def test_commas_separate_failover_entries_and_bars_separate_a_group() -> None:
    groups = parse_endpoints("http://a:1|http://b:2,http://c:3", "proxy", "proxies")
    assert groups == (
        Group((proxy("http://a:1"), proxy("http://b:2"))),
        Group((proxy("http://c:3"),)),
    )


def test_a_list_of_entries_reads_like_the_comma_string() -> None:
    as_list = parse_endpoints(["http://a:1 | http://b:2", "http://c:3/"], "server", "servers")
    as_text = parse_endpoints("http://a:1|http://b:2,http://c:3", "server", "servers")
    assert as_list == as_text


def test_base_urls_lose_their_trailing_slash_and_keep_a_path_prefix() -> None:
    (group,) = parse_endpoints("https://frontier.example.org/outpost/", "server", "servers")
    assert group.members[0].url == "https://frontier.example.org/outpost"


@pytest.mark.parametrize("blank", ["", "   "])
def test_a_blank_list_means_no_endpoints(blank: str) -> None:
    assert parse_endpoints(blank, "proxy", "proxies") == ()


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        ("http://a:1,,http://b:2", "empty entry"),
        ("http://a:1||http://b:2", "empty entry"),
        ("node-proxy:8081", "not an http(s) URL"),
        ("ftp://a:1", "not an http(s) URL"),
        ("http://a:99999", "not a URL"),
        ("http://a:1/?x=1", "query, fragment or credentials"),
        ("http://user:pw@a:1", "query, fragment or credentials"),
        ("http://a:1,http://a:1/", "listed twice"),
    ],
)
def test_a_malformed_list_fails_naming_the_key(spec: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(problem)) as caught:
        parse_endpoints(spec, "proxy", "OUTPOST_PROXIES")
    assert str(caught.value).startswith("OUTPOST_PROXIES: ")


def test_preference_keeps_entries_in_order_and_shuffles_only_inside_groups() -> None:
    groups = parse_endpoints("http://n:1,http://a:1|http://b:1|http://c:1,http://o:1", "proxy", "p")
    seen_first_in_group = set()
    for seed in range(40):
        order = [e.url for e in preference(groups, random.Random(seed))]
        assert order[0] == "http://n:1" and order[-1] == "http://o:1"
        assert sorted(order[1:4]) == ["http://a:1", "http://b:1", "http://c:1"]
        seen_first_in_group.add(order[1])
    assert seen_first_in_group == {"http://a:1", "http://b:1", "http://c:1"}  # the load spreads


def test_a_failed_endpoint_cools_down_for_the_configured_seconds() -> None:
    cooldown, node = CoolDown(30.0), proxy("http://n:1")
    cooldown.failed(node, now=100.0)
    assert cooldown.cooling(node, now=100.0)
    assert cooldown.cooling(node, now=129.9)
    assert not cooldown.cooling(node, now=130.0)


def test_a_success_ends_the_cool_down_at_once() -> None:
    cooldown, node = CoolDown(30.0), proxy("http://n:1")
    cooldown.failed(node, now=100.0)
    cooldown.succeeded(node)
    assert not cooldown.cooling(node, now=100.0)


def test_pick_skips_cooling_endpoints_unless_nothing_else_is_left() -> None:
    cooldown = CoolDown(30.0)
    node, site, origin = proxy("http://n:1"), proxy("http://s:1"), Endpoint("http://o:1", "server")
    cooldown.failed(node, now=0.0)
    assert cooldown.pick([node, site, origin], now=10.0) == site
    cooldown.failed(site, now=10.0)
    assert cooldown.pick([node, site, origin], now=10.0) == origin
    cooldown.failed(origin, now=10.0)
    assert cooldown.pick([node, site, origin], now=10.0) == node  # all cooling: list order
    assert cooldown.pick([node, site, origin], now=30.0) == node  # node's cool-down is over


def test_backoff_doubles_per_round_up_to_the_cap() -> None:
    ceilings = [backoff_delay(r, base=0.5, cap=4.0, jitter=1.0) for r in range(1, 7)]
    assert ceilings == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]


def test_backoff_jitter_spreads_between_half_and_all_of_the_ceiling() -> None:
    assert backoff_delay(3, base=0.5, cap=8.0, jitter=0.0) == 1.0
    assert backoff_delay(3, base=0.5, cap=8.0, jitter=0.5) == 1.5
    assert backoff_delay(3, base=0.5, cap=8.0, jitter=0.999) == pytest.approx(2.0, abs=0.01)


def test_the_first_round_never_waits() -> None:
    assert backoff_delay(0, base=0.5, cap=8.0, jitter=0.9) == 0.0
