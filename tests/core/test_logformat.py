"""Access-log lines (`outpost.logformat`): each layout reads back field by field as squid's and
frontier-squid's tools read it, and no request target, however hostile, breaks a line or adds
a field."""

from __future__ import annotations

import re
from dataclasses import asdict, replace

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from outpost.logformat import (
    Access,
    clean,
    escape_target,
    frontier_line,
    json_line,
    squid_line,
    squid_result,
)

ACCESS = Access(
    time=1_796_587_200.123,
    duration=0.0123,
    client="10.0.0.7",
    method="GET",
    target="/Frontier/type=frontier_request:1:DEFAULT&encoding=BLOBzip&p1=eNo",
    status=200,
    bytes=1536,
    result="TCP_MEM_HIT",
    cache_status="node-1; hit; ttl=42",
    upstream="-",
    attempts=0,
    frontier_id="CMSSW_14_0_0 12345 cmsbuild",
    if_modified_since="-",
    content_type="application/xml",
)
# squid's native layout: %ts.%03tu %6tr %>a %Ss/%03>Hs %<st %rm %ru %[un %Sh/%<a %mt
SQUID = re.compile(
    r"(?P<time>\d+\.\d{3}) +(?P<ms>\d+) (?P<client>\S+) (?P<result>[A-Z_]+)/(?P<status>\d{3}) "
    r"(?P<bytes>\d+) (?P<method>\S+) (?P<target>\S+) - (?P<hier>[A-Z_]+)/(?P<peer>\S+) "
    r"(?P<type>\S+)"
)
# frontier-squid's: %>a %ui %un [%tl] "%rm %ru HTTP/%rv" %>Hs %<st %Ss:%Sh %tr "%{X-Frontier-Id}>h"
# "%{If-Modified-Since}>h"
FRONTIER = re.compile(
    r'(?P<client>\S+) - - \[(?P<stamp>[^\]]+)\] "(?P<method>\S+) (?P<target>\S+) HTTP/1\.1" '
    r"(?P<status>\d{3}) (?P<bytes>\d+) (?P<result>[A-Z_]+):(?P<hier>[A-Z_]+) (?P<ms>\d+) "
    r'"(?P<id>[^"]*)" "(?P<ims>[^"]*)"'
)


def test_a_squid_line_reads_back_field_by_field() -> None:
    found = SQUID.fullmatch(squid_line(ACCESS))
    assert found is not None
    assert found["time"] == "1796587200.123" and found["ms"] == "12"
    assert (found["result"], found["status"], found["bytes"]) == ("TCP_MEM_HIT", "200", "1536")
    assert found["target"] == ACCESS.target and found["hier"] == "HIER_NONE"
    assert found["type"] == "application/xml"
    missed = replace(ACCESS, upstream="http://site:8081", attempts=1, result="TCP_MISS")
    assert SQUID.fullmatch(squid_line(missed))["peer"] == "site:8081"  # type: ignore[index]


def test_a_content_type_with_parameters_stays_one_squid_field() -> None:
    typed = replace(ACCESS, content_type="application/json; charset=utf-8")
    found = SQUID.fullmatch(squid_line(typed))
    assert found is not None and found["type"] == "application/json;%20charset=utf-8"


def test_a_frontier_line_carries_the_frontier_id_for_decodesquidlog() -> None:
    found = FRONTIER.fullmatch(frontier_line(ACCESS))
    assert found is not None
    assert found["stamp"] == "06/Dec/2026:20:00:00.123 +0000"
    assert found["id"] == "CMSSW_14_0_0 12345 cmsbuild"
    assert "type=frontier_request" in found["target"]  # as sent: grep finds it
    assert (found["result"], found["hier"], found["ms"]) == ("TCP_MEM_HIT", "HIER_NONE", "12")


def test_a_json_line_holds_every_field() -> None:
    assert orjson.loads(json_line(ACCESS)) == asdict(ACCESS)


@pytest.mark.parametrize(
    ("cache_status", "status", "result"),
    [
        ("node; hit; ttl=4", 200, "TCP_HIT"),
        ("node; fwd=miss; fwd-status=200; stored", 200, "TCP_MISS"),
        ("node; fwd=uri-miss; fwd-status=200; stored; collapsed", 200, "TCP_CF_HIT"),
        ("node; fwd=stale; fwd-status=304; detail=epoch", 200, "TCP_REFRESH_UNMODIFIED"),
        ("node; fwd=stale; fwd-status=200; detail=epoch", 200, "TCP_REFRESH_MODIFIED"),
        ("node; fwd=stale; detail=stale-if-error", 200, "TCP_REFRESH_FAIL_OLD"),
        ("node; detail=refused", 403, "TCP_DENIED"),
        ("node; fwd=bypass; fwd-status=200", 200, "TCP_MISS"),
        ("", 200, "NONE"),
    ],
)
def test_the_squid_result_follows_the_cache_status(
    cache_status: str, status: int, result: str
) -> None:
    assert squid_result(cache_status, status) == result


@given(st.binary(max_size=300), st.text(max_size=60))
def test_no_target_or_frontier_id_breaks_a_line_or_adds_a_field(raw: bytes, frontier: str) -> None:
    target = escape_target(raw)
    assert all(0x21 <= ord(c) <= 0x7E and c not in '"\\' for c in target)
    access = replace(ACCESS, target=target or "-", frontier_id=clean(frontier))
    for line in (squid_line(access), frontier_line(access), json_line(access)):
        assert "\n" not in line and "\r" not in line
    assert SQUID.fullmatch(squid_line(access)) is not None
    found = FRONTIER.fullmatch(frontier_line(access))
    assert found is not None and found["target"] == (target or "-")


def test_long_targets_are_escaped_but_never_remembered() -> None:
    from outpost import logformat

    logformat._escaped.clear()
    long = b"/v1/tags/" + b"x" * (logformat.MEMO_BYTES + 1)
    assert escape_target(long) == long.decode()
    assert escape_target(b"/v1/tags/short") == "/v1/tags/short"
    assert list(logformat._escaped) == [b"/v1/tags/short"]  # a client cannot fill memory
