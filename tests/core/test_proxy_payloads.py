"""Payload answers: only a 200 whose decoded bytes hash to the name is trusted (and may be
immutable); negative answers are kept briefly and never pinned."""

from __future__ import annotations

import gzip
import hashlib
import zlib

import pytest

from proxy.core.directives import parse_cache_control
from proxy.core.entry import make_entry
from proxy.core.headers import get_all
from proxy.core.payloads import negative_headers, payload_hash, payload_problem

BODY = b"calibration constants"
DIGEST = hashlib.sha256(BODY).hexdigest()
LIMIT = 1024 * 1024


def problem(status: int, body: bytes, *headers: tuple[bytes, bytes]) -> str | None:
    return payload_problem(DIGEST, status, list(headers), body, limit=LIMIT)


def test_a_payload_key_names_its_hash() -> None:
    assert payload_hash(f"/v1/payloads/{DIGEST}") == DIGEST
    assert payload_hash("/v1/payloads/xyz") is None
    assert payload_hash("/v1/resolve/GT?run=1") is None


@pytest.mark.parametrize(
    "coding",
    [(), ((b"content-encoding", b"identity"),)],
    ids=["none", "identity"],
)
def test_the_right_bytes_pass(coding: tuple[tuple[bytes, bytes], ...]) -> None:
    assert problem(200, BODY, *coding) is None


def test_wrong_bytes_fail_whatever_the_coding_says() -> None:
    assert "hashes to" in (problem(200, b"poison") or "")
    assert "hashes to" in (problem(200, b"poison", (b"content-encoding", b"identity")) or "")


def test_coded_bytes_are_checked_after_decoding() -> None:
    assert problem(200, gzip.compress(BODY), (b"content-encoding", b"gzip")) is None
    assert problem(200, zlib.compress(BODY), (b"content-encoding", b"deflate")) is None
    bad = gzip.compress(b"poison")
    assert "hashes to" in (problem(200, bad, (b"content-encoding", b"gzip")) or "")


def test_a_coding_the_proxy_cannot_undo_is_a_failure() -> None:
    assert "cannot check" in (problem(200, BODY, (b"content-encoding", b"br")) or "")
    assert "corrupt" in (problem(200, b"not gzip", (b"content-encoding", b"gzip")) or "")


def test_a_decompression_bomb_stops_at_the_limit() -> None:
    bomb = gzip.compress(b"\0" * (4 * LIMIT))
    found = payload_problem(DIGEST, 200, [(b"content-encoding", b"gzip")], bomb, limit=LIMIT)
    assert "expands past" in (found or "")


@pytest.mark.parametrize("status", [201, 203, 204, 206])
def test_only_a_200_carries_a_payload(status: int) -> None:
    assert f"status {status}" in (problem(status, BODY) or "")


@pytest.mark.parametrize("status", [301, 404, 410])
def test_negative_answers_are_not_integrity_failures(status: int) -> None:
    assert problem(status, b"whatever") is None


def test_a_negative_answer_is_never_immutable_and_kept_briefly() -> None:
    pinned = [(b"cache-control", b"public, max-age=31536000, immutable"), (b"expires", b"x")]
    headers = negative_headers(pinned, 60)
    cc = parse_cache_control(*get_all(headers, b"cache-control"))
    assert (cc.max_age, cc.immutable) == (60, False)
    assert not get_all(headers, b"expires")
    entry = make_entry(404, headers, b"no", 0, 0, 0)
    assert not entry.immutable and entry.freshness == 60 * 1_000_000


def test_a_shorter_negative_lifetime_is_kept_and_no_store_untouched() -> None:
    short = negative_headers([(b"cache-control", b"s-maxage=5, max-age=100")], 60)
    assert parse_cache_control(*get_all(short, b"cache-control")).max_age == 5
    never = [(b"cache-control", b"no-store")]
    assert negative_headers(never, 60) == never
