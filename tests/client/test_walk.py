"""One request's walk and the answers it accepts: pure, driven by hand with a fake `now`."""

from __future__ import annotations

import hashlib

import orjson
import pytest
from client.fakenet import GT, PAYLOADS, resolve_answer

from outpost.client import (
    AllEndpointsFailed,
    BadRequest,
    Endpoint,
    IntegrityError,
    NotFound,
    RequestRejected,
    RunConditions,
)
from outpost.client.answers import (
    Unusable,
    decode_resolution,
    payload_query,
    resolve_query,
    verify_payload,
)
from outpost.client.endpoints import CoolDown
from outpost.client.walk import Failover, Retry, Try, Wait, Walk, verdict

NODE = Endpoint("http://node:1", "proxy")
SITE = Endpoint("http://site:1", "proxy")
ORIGIN = Endpoint("http://origin:1", "server")
PATH = "/v1/payloads/" + "ab" * 32


def make_failover(*order: Endpoint, rounds: int = 1, jitter: float = 0.5) -> Failover:
    return Failover(
        order=order or (NODE, SITE, ORIGIN),
        cooldown=CoolDown(30.0),
        retry=Retry(rounds=rounds, backoff=1.0, backoff_cap=8.0),
        jitter=lambda: jitter,
    )


def tries(walk: Walk, now: float = 0.0) -> Endpoint:
    step = walk.next(now)
    assert isinstance(step, Try), step
    return step.endpoint


def identity(body: bytes) -> bytes:
    return body


# --- the walk ----------------------------------------------------------------------------------


def test_a_walk_tries_each_proxy_in_order_then_each_server() -> None:
    walk = make_failover().walk(PATH)
    visited = []
    for _ in range(3):
        endpoint = tries(walk)
        visited.append(endpoint)
        walk.failed(endpoint, "connect", "refused", now=0.0)
    assert visited == [NODE, SITE, ORIGIN]


def test_a_200_is_decoded_and_returned_and_counted_for_its_endpoint() -> None:
    failover = make_failover()
    walk = failover.walk(PATH)
    assert walk.answered(tries(walk), 200, b"bytes", identity, now=0.0) == b"bytes"
    assert failover.stats.served_by == {NODE.url: 1}
    assert failover.stats.requests == failover.stats.attempts == 1


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_a_5xx_fails_over_to_the_next_endpoint_and_cools_the_first_down(status: int) -> None:
    failover = make_failover()
    walk = failover.walk(PATH)
    assert walk.answered(tries(walk), status, b"{}", identity, now=5.0) is None
    assert tries(walk, now=5.0) == SITE
    assert failover.cooldown.cooling(NODE, now=34.9)
    assert walk.attempts[0].detail == f"status {status}"


@pytest.mark.parametrize(
    ("status", "rejection"), [(400, BadRequest), (404, NotFound), (403, RequestRejected)]
)
def test_a_4xx_is_raised_with_the_servers_body_and_nothing_else_is_tried(
    status: int, rejection: type[RequestRejected]
) -> None:
    failover = make_failover()
    walk = failover.walk(PATH)
    body = {"error": "not found", "detail": "global tag 'X' does not exist", "accepted": None}
    with pytest.raises(rejection) as caught:
        walk.answered(tries(walk), status, orjson.dumps(body), identity, now=0.0)
    assert type(caught.value) is rejection
    assert (caught.value.status, caught.value.body, caught.value.endpoint) == (
        status,
        body,
        NODE.url,
    )
    assert caught.value.detail == "global tag 'X' does not exist"
    assert failover.stats.attempts == 1 and failover.stats.rejected == 1


def test_a_4xx_without_a_json_body_keeps_its_text_as_the_detail() -> None:
    walk = make_failover().walk(PATH)
    with pytest.raises(RequestRejected) as caught:
        walk.answered(tries(walk), 418, b"I'm a teapot", identity, now=0.0)
    assert caught.value.detail == "I'm a teapot"


@pytest.mark.parametrize("status", [204, 206, 301, 304, 100])
def test_statuses_the_client_cannot_use_fail_over(status: int) -> None:
    assert verdict(status) == "failover"


def test_the_verdict_table_accepts_200_and_rejects_4xx() -> None:
    assert [verdict(s) for s in (200, 400, 404, 429, 500, 503)] == [
        "accept",
        "reject",
        "reject",
        "reject",
        "failover",
        "failover",
    ]


def test_when_every_endpoint_failed_the_error_names_each_one_and_why() -> None:
    walk = make_failover().walk(PATH)
    walk.failed(tries(walk), "connect", "connect: ConnectError: refused", now=0.0)
    walk.failed(tries(walk), "timeout", "timeout: ReadTimeout", now=0.0)
    walk.answered(tries(walk), 503, b"", identity, now=0.0)
    with pytest.raises(AllEndpointsFailed) as caught:
        walk.next(0.0)
    assert type(caught.value) is AllEndpointsFailed
    assert caught.value.endpoints == (NODE.url, SITE.url, ORIGIN.url)
    assert [a.kind for a in caught.value.attempts] == ["connect", "timeout", "status"]
    message = str(caught.value)
    assert message.startswith(f"GET {PATH}: every endpoint failed (")
    assert f"{NODE.url}: connect: ConnectError: refused" in message
    assert f"{ORIGIN.url}: status 503" in message


def test_another_round_follows_a_jittered_backoff_and_walks_the_list_again() -> None:
    walk = make_failover(rounds=3, jitter=0.5).walk(PATH)
    order = []
    for expected_wait in (0.75, 1.5):  # base 1 s: ceilings 1, 2; half + half·jitter
        for _ in range(3):
            endpoint = tries(walk)
            order.append(endpoint)
            walk.failed(endpoint, "connect", "refused", now=0.0)
        assert walk.next(0.0) == Wait(expected_wait)
    assert order == [NODE, SITE, ORIGIN] * 2
    assert tries(walk) == NODE


def test_a_payload_with_the_wrong_bytes_fails_over_and_is_counted() -> None:
    failover = make_failover()
    walk = failover.walk(PATH)
    digest = next(iter(PAYLOADS))

    def check(body: bytes) -> bytes:
        return verify_payload(digest, body)

    assert walk.answered(tries(walk), 200, b"garbage", check, now=0.0) is None
    assert walk.answered(tries(walk), 200, PAYLOADS[digest], check, now=0.0) == PAYLOADS[digest]
    assert failover.stats.integrity_errors == 1
    assert failover.cooldown.cooling(NODE, now=1.0)


def test_bad_bytes_somewhere_make_the_final_error_an_integrity_error() -> None:
    walk = make_failover(NODE).walk(PATH)
    walk.answered(tries(walk), 200, b"garbage", lambda b: verify_payload("ab" * 32, b), now=0.0)
    with pytest.raises(IntegrityError, match="payload bytes hash to"):
        walk.next(0.0)


def test_endpoints_cooling_down_from_earlier_requests_are_tried_last() -> None:
    failover = make_failover()
    first = failover.walk(PATH)
    first.failed(tries(first), "connect", "refused", now=100.0)
    assert failover.plan(now=110.0) == (SITE, ORIGIN, NODE)
    second = failover.walk(PATH)
    assert tries(second, now=110.0) == SITE
    assert failover.plan(now=130.0) == (NODE, SITE, ORIGIN)


def test_a_cooling_endpoint_is_still_tried_when_nothing_else_is_left() -> None:
    failover = make_failover(NODE, ORIGIN)
    earlier = failover.walk(PATH)
    earlier.failed(tries(earlier), "connect", "refused", now=0.0)
    walk = failover.walk(PATH)
    walk.failed(tries(walk, now=1.0), "timeout", "timeout", now=1.0)  # the origin
    assert tries(walk, now=1.0) == NODE
    assert walk.answered(NODE, 200, b"ok", identity, now=1.0) == b"ok"
    assert not failover.cooldown.cooling(NODE, now=1.0)  # it answered: cool-down over


# --- requests and answers -----------------------------------------------------------------------


def test_resolve_urls_are_the_canonical_ones() -> None:
    assert resolve_query(GT, 500).url() == f"/v1/resolve/{GT}?run=500"
    assert resolve_query(GT, 500, 7).url() == f"/v1/resolve/{GT}?lumi=7&run=500"
    assert resolve_query(GT, 500, 1).url() == f"/v1/resolve/{GT}?run=500"


@pytest.mark.parametrize(
    ("globaltag", "run", "lumi", "problem"),
    [
        ("no spaces", 1, None, "not a plain name"),
        ("a/b", 1, None, "not a plain name"),
        (GT, -1, None, "run='-1' is not an integer"),
        (GT, 2**31, None, "out of range"),
        (GT, 1, -3, "lumi='-3' is not an integer"),
        (GT, True, None, "run='True' is not an integer"),
        (GT, "7", None, "no canonical URL"),
    ],
)
def test_a_query_no_origin_accepts_is_refused_before_sending(
    globaltag: str, run: int, lumi: int | None, problem: str
) -> None:
    with pytest.raises(BadRequest, match=problem) as caught:
        resolve_query(globaltag, run, lumi)
    assert caught.value.endpoint is None and caught.value.status == 400
    assert caught.value.error == "bad request"


def test_payload_urls_use_the_lower_case_hash() -> None:
    digest = next(iter(PAYLOADS))
    assert payload_query(digest.upper()).url() == f"/v1/payloads/{digest}"


@pytest.mark.parametrize("digest", ["", "abc", "g" * 64, "a" * 65, "../" + "a" * 61])
def test_a_malformed_hash_is_refused_before_sending(digest: str) -> None:
    with pytest.raises(BadRequest, match="not a SHA-256 hash") as caught:
        payload_query(digest)
    assert caught.value.accepted == "64 hexadecimal digits"


def test_a_resolve_answer_becomes_typed_records_and_distinct_payloads() -> None:
    resolution = decode_resolution(orjson.dumps(resolve_answer(500)), resolve_query(GT, 500))
    assert (resolution.globaltag, resolution.run, resolution.lumi) == (GT, 500, 1)
    assert len(resolution.records) == len(PAYLOADS) + 2
    assert resolution.payloads == tuple(PAYLOADS)
    assert resolution.records[-1].payload is None


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"<html>proxy error</html>", "not JSON"),
        (b"[]", "no list of records"),
        (orjson.dumps(resolve_answer(501)), "is for"),
        (orjson.dumps(resolve_answer(500, globaltag="OTHER")), "is for"),
        (orjson.dumps({**resolve_answer(500), "records": [1]}), "no object"),
        (orjson.dumps({**resolve_answer(500), "records": [{"record": "A"}]}), "bad 'label'"),
        (orjson.dumps({**resolve_answer(500), "time": "later"}), "malformed time"),
    ],
)
def test_an_unreadable_resolve_answer_is_unusable(body: bytes, problem: str) -> None:
    with pytest.raises(Unusable, match=problem) as caught:
        decode_resolution(body, resolve_query(GT, 500))
    assert caught.value.kind == "invalid"


def test_a_record_naming_a_malformed_hash_is_unusable() -> None:
    answer = resolve_answer(500)
    answer["records"] = [{**answer["records"][0], "payload": "XYZ"}]  # type: ignore[index]
    with pytest.raises(Unusable, match="malformed payload hash"):
        decode_resolution(orjson.dumps(answer), resolve_query(GT, 500))


def test_payload_bytes_are_checked_against_their_hash() -> None:
    body = b"ecal pedestals"
    digest = hashlib.sha256(body).hexdigest()
    assert verify_payload(digest, body) is body
    with pytest.raises(Unusable) as caught:
        verify_payload(digest, body + b"!")
    assert caught.value.kind == "integrity"
    assert digest in caught.value.detail


def test_run_conditions_hand_out_each_records_bytes() -> None:
    resolution = decode_resolution(orjson.dumps(resolve_answer(1)), resolve_query(GT, 1))
    conditions = RunConditions(resolution, dict(PAYLOADS))
    first = next(iter(PAYLOADS))
    assert conditions.payload_of("Rcd0") == conditions.payload_of("Shared") == PAYLOADS[first]
    assert conditions.payload_of("Empty") is None
    with pytest.raises(KeyError):
        conditions.payload_of("NoSuchRcd")
