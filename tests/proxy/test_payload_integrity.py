"""Payload URLs through the proxy, in process: an upstream that lies about a payload (wrong bytes
behind a content coding, a 203, a 404 pinned for a year) never gets its answer stored for a year
or served after a flush; the next upstream is asked instead. A lying upstream and an honest one
sit behind one httpx client, each on its own host."""

from __future__ import annotations

import gzip
import hashlib
from collections.abc import Iterator

import httpx
import pytest
from support.asgi import AppClient
from support.inprocess import InProcessUpstream
from support.origin import FakeClock
from support.scripted import Answer, ScriptedOrigin

from proxy.app import create_app
from proxy.settings import ProxySettings

LIAR, HONEST = "http://liar.test", "http://honest.test"
TOKEN = "run-control"
BODY = b"pixel gains " * 100
DIGEST = hashlib.sha256(BODY).hexdigest()
PATH = f"/v1/payloads/{DIGEST}"
FOREVER = "public, max-age=31536000, immutable"


@pytest.fixture
def liar() -> ScriptedOrigin:
    return ScriptedOrigin()


@pytest.fixture
def honest() -> ScriptedOrigin:
    origin = ScriptedOrigin()
    origin.script(PATH, Answer(200, {"cache-control": FOREVER, "etag": f'"{DIGEST}"'}, BODY))
    return origin


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def start(clock: FakeClock, upstreams: dict[str, ScriptedOrigin]) -> AppClient:
    mounts = {url: httpx.ASGITransport(app=app) for url, app in upstreams.items()}  # type: ignore[arg-type]
    client = httpx.AsyncClient(mounts=mounts)
    settings = ProxySettings(
        name="edge", upstreams=tuple(upstreams), run_control_token=TOKEN, retries=0
    )
    return AppClient(create_app(settings, upstream_client=InProcessUpstream(client), clock=clock))


@pytest.fixture
def proxy(clock: FakeClock, liar: ScriptedOrigin, honest: ScriptedOrigin) -> Iterator[AppClient]:
    with start(clock, {LIAR: liar, HONEST: honest}) as app:
        yield app


def flush(proxy: AppClient) -> None:
    answer = proxy.post(
        "/_outpost/flush", json={"run": 1}, headers={"authorization": f"Bearer {TOKEN}"}
    )
    assert answer.status_code == 200


LIES = {
    "identity coding, wrong bytes": Answer(
        200, {"cache-control": FOREVER, "content-encoding": "identity"}, b"poison"
    ),
    "gzip coding, wrong bytes": Answer(
        200, {"cache-control": FOREVER, "content-encoding": "gzip"}, gzip.compress(b"poison")
    ),
    "a coding the proxy cannot undo": Answer(
        200, {"cache-control": FOREVER, "content-encoding": "br"}, b"poison"
    ),
    "203 with the right bytes": Answer(203, {"cache-control": FOREVER}, BODY),
    "206 with part of the bytes": Answer(206, {"cache-control": FOREVER}, BODY[:10]),
}


@pytest.mark.parametrize("lie", sorted(LIES))
def test_a_lying_upstream_is_skipped_for_the_next(
    proxy: AppClient, liar: ScriptedOrigin, honest: ScriptedOrigin, lie: str
) -> None:
    liar.script(PATH, LIES[lie])
    first = proxy.get(PATH, headers={"accept-encoding": "identity"})
    assert first.status_code == 200 and first.content == BODY
    assert (liar.count(PATH), honest.count(PATH)) == (1, 1)
    again = proxy.get(PATH, headers={"accept-encoding": "identity"})
    assert again.content == BODY and "; hit" in again.headers["cache-status"]
    assert liar.count(PATH) == 1  # the honest answer was stored, not the lie


def test_with_only_a_liar_the_client_gets_a_502_and_nothing_is_stored(
    clock: FakeClock, liar: ScriptedOrigin
) -> None:
    liar.script(PATH, LIES["identity coding, wrong bytes"])
    with start(clock, {LIAR: liar}) as proxy:
        for _ in range(2):
            answer = proxy.get(PATH)
            assert answer.status_code == 502
            assert "hashes to" in answer.json()["detail"]
    assert liar.count(PATH) == 2


def test_a_gzip_coded_payload_with_the_right_bytes_is_stored(
    clock: FakeClock, liar: ScriptedOrigin
) -> None:
    coded = gzip.compress(BODY)
    liar.script(PATH, Answer(200, {"cache-control": FOREVER, "content-encoding": "gzip"}, coded))
    with start(clock, {LIAR: liar}) as proxy:
        proxy.get(PATH)
        hit = proxy.get(PATH)
    assert hit.content == BODY and "; hit" in hit.headers["cache-status"]


def test_a_404_pinned_for_a_year_is_kept_a_minute_and_cleared_by_a_flush(
    clock: FakeClock, liar: ScriptedOrigin
) -> None:
    liar.script(PATH, Answer(404, {"cache-control": FOREVER}, b'{"error": "not found"}'))
    with start(clock, {LIAR: liar}) as proxy:
        first = proxy.get(PATH)
        assert first.status_code == 404
        assert first.headers["cache-control"] == "public, max-age=60"  # relayed as stored
        assert "; hit" in proxy.get(PATH).headers["cache-status"]
        flush(proxy)
        proxy.get(PATH)  # a flush reaches it: not immutable
        assert liar.count(PATH) == 2
        clock.advance(61)
        proxy.get(PATH)  # and it expires within a minute
        assert liar.count(PATH) == 3


def test_a_304_cannot_pin_a_negative_answer_or_change_a_stored_coding(
    clock: FakeClock, liar: ScriptedOrigin
) -> None:
    liar.script(PATH, Answer(404, {"cache-control": "max-age=10", "etag": '"gone"'}, b"no"))
    with start(clock, {LIAR: liar}) as proxy:
        proxy.get(PATH)
        clock.advance(11)
        liar.script(  # the revalidation's 304 tries to pin it and to recode it
            PATH,
            Answer(
                404,
                {"cache-control": FOREVER, "etag": '"gone"', "content-encoding": "gzip"},
                b"no",
            ),
        )
        refreshed = proxy.get(PATH)
        assert refreshed.status_code == 404
        assert refreshed.headers["cache-control"] == "public, max-age=60"
        assert "content-encoding" not in refreshed.headers
        flush(proxy)
        proxy.get(PATH)
    assert liar.count(PATH) == 3
