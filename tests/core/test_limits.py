"""The pure parts of `outpost.limits`: the connection cap under the file limit, the soft limit
asked for, the settings' limits, and the raw answer a refused connection gets."""

from __future__ import annotations

import resource

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from origin.settings import OriginSettings
from outpost.config import SettingsError
from outpost.errors import HeaderFieldsTooLarge, ServiceUnavailable
from outpost.limits import (
    ConnectionLimits,
    connection_cap,
    error_answer,
    limits_from,
    raised_nofile,
)
from proxy.settings import ProxySettings


@given(st.integers(1, 10**6), st.integers(0, 10**6), st.integers(0, 10**4))
def test_the_cap_keeps_the_reserve_under_the_file_limit(
    max_connections: int, nofile: int, reserve: int
) -> None:
    cap = connection_cap(max_connections, nofile, reserve)
    assert 1 <= cap <= max_connections
    if nofile - reserve >= 1:
        assert cap + reserve <= nofile
    if nofile - reserve >= max_connections:
        assert cap == max_connections


@given(st.integers(0, 2**20), st.integers(0, 2**20))
def test_the_soft_limit_asked_for_is_the_hard_limit_never_less(soft: int, hard: int) -> None:
    assert raised_nofile(soft, hard) == max(soft, hard)


def test_an_unlimited_hard_limit_leaves_the_soft_limit() -> None:
    assert raised_nofile(1024, resource.RLIM_INFINITY) == 1024


def test_limits_come_from_either_program_settings_with_the_cap_under_the_file_limit() -> None:
    proxy = ProxySettings(upstreams=("http://up",), max_header_bytes=4096, max_connections=900)
    assert limits_from(proxy, nofile=1024) == ConnectionLimits(4096, 100, 60.0, 896, 64)
    origin = OriginSettings(header_timeout_seconds=1.5, fd_reserve=24)
    assert limits_from(origin, nofile=100) == ConnectionLimits(128 * 1024, 100, 1.5, 76, 12)


@pytest.mark.parametrize(
    "field", ["max_header_bytes", "max_header_count", "header_timeout_seconds", "max_connections"]
)
def test_limits_must_be_positive(field: str) -> None:
    with pytest.raises(SettingsError, match=field):
        OriginSettings(**{field: 0})  # type: ignore[arg-type]
    with pytest.raises(SettingsError, match=field):
        ProxySettings(upstreams=("http://up",), **{field: 0})  # type: ignore[arg-type]


def _parse(answer: bytes) -> tuple[str, dict[str, str], bytes]:
    head, _, body = answer.partition(b"\r\n\r\n")
    status, *lines = head.decode("latin-1").split("\r\n")
    return status, {k.lower(): v.strip() for k, _, v in (x.partition(":") for x in lines)}, body


def test_a_refusal_is_a_whole_json_answer_that_closes_the_connection() -> None:
    error = ServiceUnavailable("busy", accepted="later", headers={"Retry-After": "2"})
    status, headers, body = _parse(error_answer(error, [(b"server", b"uvicorn")]))
    assert status == "HTTP/1.1 503 Service Unavailable"
    assert headers["connection"] == "close"
    assert headers["retry-after"] == "2"
    assert headers["server"] == "uvicorn"
    assert headers["content-type"] == "application/json"
    assert int(headers["content-length"]) == len(body)
    assert orjson.loads(body) == {
        "error": "service unavailable",
        "detail": "busy",
        "accepted": "later",
    }


def test_431_has_its_reason_phrase() -> None:
    status, _, body = _parse(error_answer(HeaderFieldsTooLarge("too big")))
    assert status == "HTTP/1.1 431 Request Header Fields Too Large"
    assert orjson.loads(body)["error"] == "request header fields too large"
