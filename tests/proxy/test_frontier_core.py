"""The pure parts of serving Frontier clients: Frontier keys, request directives (soft and hard
refresh), forward-proxy destinations (the allow-list) and client networks."""

from __future__ import annotations

import pytest

from outpost.config import SettingsError
from proxy.core.clients import DEFAULT_CLIENT_NETWORKS, ClientNetworks
from proxy.core.directives import CacheControl, request_cache_control
from proxy.core.forward import (
    Authority,
    Destinations,
    names_proxy,
    parse_authority,
    parse_pattern,
    split_absolute_target,
)
from proxy.core.frontier import is_frontier_path
from proxy.core.keys import primary_key
from proxy.settings import ProxySettings

PATH_FORM = (
    "/outpost/Frontier/type=frontier_request:1:DEFAULT&encoding=BLOBzip&p1=eNpzdQ0K8vUEAAmkAl0"
)
QUERY = "type=frontier_request:1:DEFAULT&encoding=BLOBzip&p1=eNpzdQ0K8vUEAAmkAl0"

# --- Frontier URLs and keys --------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        PATH_FORM,
        "/FrontierProd/Frontier",
        "/FrontierProd/Frontier/",
        "/outpost/Frontier/type=x",
        "/a.b-c_d/Frontier/x/y",
    ],
)
def test_frontier_paths_are_one_servlet_segment_then_frontier(path: str) -> None:
    assert is_frontier_path(path)


@pytest.mark.parametrize(
    "path",
    [
        "/Frontier/type=x",  # no servlet segment
        "//Frontier/type=x",
        "/a/b/Frontier/type=x",  # two segments
        "/outpost/frontier/type=x",  # case matters, as in the servlet mapping
        "/outpost/FrontierX/type=x",
        "/outpost/Frontier2",
        "/v1/resolve/GT",
        "/a?x=/Frontier/",  # a key whose query merely mentions /Frontier/
    ],
)
def test_other_paths_are_not_frontier(path: str) -> None:
    assert not is_frontier_path(path)


def test_frontier_keys_are_neither_decoded_nor_reordered() -> None:
    escaped = "/outpost/Frontier/type=x&p1=ab%2Bcd"
    assert primary_key(escaped, "") == escaped
    assert primary_key("/outpost/Frontier/type=x&p1=ab+cd", "") != escaped
    assert primary_key("/s/Frontier", "p1=b&type=a") == "/s/Frontier?p1=b&type=a"
    assert primary_key("/s/Frontier", "type=a&p1=b") == "/s/Frontier?type=a&p1=b"


def test_an_escaped_slash_is_not_the_frontier_url_it_decodes_to() -> None:
    """The proxy forwards the target as received, so it keys it so: `Frontier%2Ftype=…` is
    its own URL (an error at the servlet), never the key of `Frontier/type=…`."""
    assert primary_key("/outpost/Frontier%2Ftype=x&p1=ab", "") != primary_key(
        "/outpost/Frontier/type=x&p1=ab", ""
    )
    assert primary_key("/outpost/Frontier%2ftype=x", "") == "/outpost/Frontier%2ftype=x"


def test_outpost_reads_still_key_on_their_canonical_url_and_others_on_the_raw_path() -> None:
    assert primary_key("/v1/resolve/GT", "run=05&lumi=1") == "/v1/resolve/GT?run=5"
    assert primary_key("/a%20b", "x=1") == "/a%20b?x=1"


# --- soft and hard refresh ---------------------------------------------------------------------


def test_the_soft_refresh_is_max_age_0() -> None:
    cc = request_cache_control([b"max-stale=1,max-age=0"], [], pragma_always=True)
    assert cc.max_age == 0 and cc.max_stale == 1 and not cc.no_cache


def test_the_hard_refresh_is_pragma_no_cache_next_to_cache_control_for_frontier_only() -> None:
    frontier = request_cache_control([b"max-stale=1"], [b"no-cache"], pragma_always=True)
    assert frontier.no_cache and frontier.max_stale == 1
    other = request_cache_control([b"max-stale=1"], [b"no-cache"], pragma_always=False)
    assert not other.no_cache  # RFC 9111 §5.4: Pragma is ignored next to Cache-Control


def test_pragma_alone_and_cache_control_no_cache_are_no_cache_for_everyone() -> None:
    assert request_cache_control([], [b"No-Cache"]) == CacheControl(no_cache=True)
    assert request_cache_control([b"no-cache"], []).no_cache
    assert request_cache_control([], []) == CacheControl()


# --- destinations ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("origin.example", Authority("origin.example", None)),
        ("Origin.Example.:8000", Authority("origin.example", 8000)),
        ("origin.example:", Authority("origin.example", None)),
        ("10.1.2.3:80", Authority("10.1.2.3", 80)),
        ("[2001:DB8::1]:8000", Authority("2001:db8::1", 8000)),
        ("[2001:db8:0:0::1]", Authority("2001:db8::1", None)),
        ("::1", Authority("::1", None)),
    ],
)
def test_authorities_are_normalised(text: str, expected: Authority) -> None:
    assert parse_authority(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "allowed.example@evil",
        "user:pw@allowed.example",
        "allowed.example:80x",
        "allowed.example:0",
        "allowed.example:65536",
        "allowed.example:+80",
        "allowed example",
        "allowed.example/x",
        "allowed..example",
        "[::1",
        "[::1]x",
        "[fe80::1%25eth0]",
        "[not-v6]:80",
        "allowed.example:\uff18\uff10",  # non-ASCII digits
        "allowed.example\x00",
    ],
)
def test_invalid_authorities_are_refused(text: str) -> None:
    assert parse_authority(text) is None


def test_absolute_targets_split_into_authority_and_path_with_default_ports() -> None:
    assert split_absolute_target("http://Origin.Example:8000/outpost/Frontier/type=x") == (
        Authority("origin.example", 8000),
        "/outpost/Frontier/type=x",
    )
    assert split_absolute_target("http://origin.example/") == (Authority("origin.example", 80), "/")
    assert split_absolute_target("HTTPS://origin.example") == (
        Authority("origin.example", 443),
        "/",
    )
    assert split_absolute_target("http://[::1]:8000/a") == (Authority("::1", 8000), "/a")


@pytest.mark.parametrize(
    "target",
    [
        "http://allowed.example@evil/",
        "http://allowed.example:8000@evil/",
        "ftp://allowed.example/x",
        "/outpost/Frontier/x",
        "http:///x",
        "http://allowed.example:x/",
    ],
)
def test_invalid_absolute_targets_are_refused(target: str) -> None:
    assert split_absolute_target(target) is None


def allowed(patterns: list[str], authority: str) -> bool:
    parsed = parse_authority(authority)
    assert parsed is not None
    return Destinations(patterns).allows(parsed)


@pytest.mark.parametrize(
    ("patterns", "authority", "expected"),
    [
        (["origin.example"], "origin.example", True),
        (["origin.example"], "ORIGIN.example.:8000", True),  # any port, case, trailing dot
        (["origin.example:8000"], "origin.example:8000", True),
        (["origin.example:8000"], "origin.example:8001", False),
        (["origin.example:8000"], "origin.example", True),  # the Host did not say its port
        (["origin.example:80"], "origin.example:80", True),
        (["origin.example"], "allowed.origin.example", False),
        (["allowed.example"], "allowed.example.evil.com", False),
        (["allowed.example"], "evil-allowed.example", False),
        (["allowed.example"], "xallowed.example", False),
        (["*.cern.ch"], "cmsfrontier.cern.ch", True),
        (["*.cern.ch"], "a.b.cern.ch:8000", True),
        (["*.cern.ch"], "cern.ch", False),
        (["*.cern.ch"], "evilcern.ch", False),
        (["*.cern.ch"], "cern.ch.evil.com", False),
        (["*.cern.ch:8000"], "cmsfrontier.cern.ch:8080", False),
        (["[2001:db8::1]:8000"], "[2001:db8:0::1]:8000", True),
        (["2001:db8::1"], "[2001:db8::1]:9", True),
        (["[2001:db8::1]:8000"], "[2001:db8::2]:8000", False),
        (["10.1.2.3"], "10.1.2.3:8000", True),
        (["10.1.2.3"], "10.1.2.30", False),
        ([], "origin.example", False),
        (["a.example", "b.example:1"], "b.example:1", True),
    ],
)
def test_destination_patterns(patterns: list[str], authority: str, expected: bool) -> None:
    assert allowed(patterns, authority) is expected


def test_default_ports_of_absolute_targets_meet_host_port_patterns() -> None:
    split = split_absolute_target("http://origin.example/x")
    assert split is not None
    authority, _ = split
    assert Destinations(["origin.example:80"]).allows(authority)
    assert not Destinations(["origin.example:8000"]).allows(authority)
    assert Destinations(["origin.example"]).allows(authority)


@pytest.mark.parametrize(
    "pattern",
    [
        "",
        "*",
        "*.",
        "*.[::1]",
        "a@b",
        "http://origin.example",
        "origin.example/x",
        "a:b:c:d:e:f:g:h:i",
    ],
)
def test_bad_patterns_are_refused_naming_what_is_accepted(pattern: str) -> None:
    with pytest.raises(ValueError, match="host:port"):
        parse_pattern(pattern)


def test_patterns_print_as_they_match() -> None:
    assert [str(p) for p in Destinations(["*.CERN.ch", "[::1]:80", "a.example:8000"]).patterns] == [
        "*.cern.ch",
        "[::1]:80",
        "a.example:8000",
    ]


def test_a_host_names_the_proxy_by_its_port_or_its_names() -> None:
    names, ports = frozenset({"node-12", "localhost"}), frozenset({8081})
    assert names_proxy(Authority("anything.example", 8081), names, ports)
    assert names_proxy(Authority("node-12", None), names, ports)
    assert names_proxy(Authority("localhost", 9000), names, ports)
    assert not names_proxy(Authority("origin.example", None), names, ports)
    assert not names_proxy(Authority("origin.example", 8000), names, ports)


# --- client networks ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("127.0.0.1", True),
        ("127.9.9.9", True),
        ("10.1.2.3", True),
        ("172.16.0.1", True),
        ("172.31.255.255", True),
        ("172.32.0.1", False),
        ("192.168.1.1", True),
        ("192.169.1.1", False),
        ("8.8.8.8", False),
        ("100.64.0.1", False),  # carrier-grade NAT is not private: add it if a farm uses it
        ("::1", True),
        ("fd00::1", True),
        ("fc00::1", True),
        ("fe80::1", False),
        ("2001:db8::1", False),
        ("::ffff:10.1.2.3", True),  # IPv4-mapped, as a dual-stack socket reports it
        ("::ffff:8.8.8.8", False),
        ("[::1]", True),
        ("fd00::1%eth0", True),
        ("not-an-address", False),
        ("", False),
    ],
)
def test_default_client_networks_are_loopback_and_private(address: str, expected: bool) -> None:
    assert ClientNetworks(DEFAULT_CLIENT_NETWORKS).allows(address) is expected


def test_client_networks_can_be_narrowed_or_opened() -> None:
    farm = ClientNetworks(["10.20.0.0/16", "2001:db8:1::/48"])
    assert farm.allows("10.20.3.4") and farm.allows("2001:db8:1::7")
    assert not farm.allows("127.0.0.1") and not farm.allows("10.21.0.1")
    everyone = ClientNetworks(["0.0.0.0/0", "::/0"])
    assert everyone.allows("8.8.8.8") and everyone.allows("2001:4860::8888")


def test_bad_networks_are_refused() -> None:
    with pytest.raises(ValueError, match="CIDR"):
        ClientNetworks(["10.0.0.0/33"])
    with pytest.raises(ValueError, match="CIDR"):
        ClientNetworks(["farm"])


# --- settings ----------------------------------------------------------------------------------


def test_settings_name_the_bad_destination_or_network() -> None:
    with pytest.raises(SettingsError, match=r"forward_destinations.*'a@b'"):
        ProxySettings(upstreams=("http://u",), forward_destinations=("a@b",))
    with pytest.raises(SettingsError, match=r"client_networks.*'farm'"):
        ProxySettings(upstreams=("http://u",), client_networks=("farm",))
    with pytest.raises(SettingsError, match="client_networks is empty"):
        ProxySettings(upstreams=("http://u",), client_networks=())


def test_settings_read_the_lists_from_the_environment() -> None:
    from outpost.config import load_settings

    settings = load_settings(
        ProxySettings,
        "proxy",
        environ={
            "OUTPOST_PROXY_UPSTREAMS": "http://u",
            "OUTPOST_PROXY_FORWARD_DESTINATIONS": "origin.example:8000, *.cern.ch",
            "OUTPOST_PROXY_CLIENT_NETWORKS": "10.0.0.0/8",
        },
    )
    assert settings.forward_destinations == ("origin.example:8000", "*.cern.ch")
    assert settings.client_networks == ("10.0.0.0/8",)
    assert ProxySettings(upstreams=("http://u",)).forward_destinations == ()
