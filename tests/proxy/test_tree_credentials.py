"""Who may command a proxy, in process: run control's token flushes and warms, the registration
token only registers, a parent's signature works once for the child it names, and no epoch from
outside moves the proxy's epoch by more than `max_epoch_step`."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from support.asgi import AppClient
from support.inprocess import InProcessUpstream
from support.origin import FakeClock
from support.scripted import Answer, ScriptedOrigin

from outpost.config import SettingsError
from proxy.app import create_app
from proxy.core.signing import SIGNATURE_HEADER, Signer, generate_keypair
from proxy.settings import ProxySettings
from proxy.storage.codec import seal, unseal

UPSTREAM = "http://upstream.test"
RUN_CONTROL = "run-control-token"
REGISTER = "register-only-token"
SIGNING, PUBLIC = generate_keypair()


def make_proxy(origin: ScriptedOrigin, **settings: object) -> AppClient:
    config = ProxySettings(name="node-1", upstreams=(UPSTREAM,), **settings)  # type: ignore[arg-type]
    transport = httpx.ASGITransport(app=origin)  # type: ignore[arg-type]
    client = httpx.AsyncClient(transport=transport)
    return AppClient(
        create_app(config, upstream_client=InProcessUpstream(client), clock=FakeClock())
    )


@pytest.fixture
def origin() -> ScriptedOrigin:
    return ScriptedOrigin()


@pytest.fixture
def site(origin: ScriptedOrigin) -> Iterator[AppClient]:
    """A proxy as run control's top of the tree: every credential."""
    with make_proxy(
        origin, run_control_token=RUN_CONTROL, register_token=REGISTER, tree_signing_key=SIGNING
    ) as app:
        yield app


@pytest.fixture
def leaf(origin: ScriptedOrigin) -> Iterator[AppClient]:
    """A node proxy as deployed: the tree's public key and the registration token only."""
    with make_proxy(origin, register_token=REGISTER, tree_public_key=PUBLIC) as app:
        yield app


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def signed_flush(
    body: dict[str, object], to: str = "node-1", key: str = SIGNING, at: float | None = None
) -> tuple[bytes, dict[str, str]]:
    raw = orjson.dumps(body)
    header = Signer(key).header("POST", "/_outpost/flush", to, raw, at or time.time())
    return raw, {SIGNATURE_HEADER: header, "content-type": "application/json"}


def epoch_of(proxy: AppClient) -> int:
    epoch: int = proxy.get("/_outpost/status").json()["epoch"]
    return epoch


@pytest.mark.parametrize("route", ["/_outpost/flush", "/_outpost/warm"])
def test_the_registration_token_cannot_flush_or_warm(site: AppClient, route: str) -> None:
    answer = site.post(route, json={"run": 1, "urls": ["/a"]}, headers=bearer(REGISTER))
    assert answer.status_code == 403
    assert answer.json()["error"] and "run control" in answer.json()["detail"]
    assert epoch_of(site) == 0
    metrics = site.get("/_outpost/metrics").text
    assert 'outpost_proxy_admin_refused_total{reason="token",route="' in metrics


def test_registering_needs_the_registration_token_and_nothing_else_does(site: AppClient) -> None:
    child = {"name": "node-7", "url": "http://127.0.0.1:9/"}
    assert site.post("/_outpost/register", json=child).status_code == 401
    assert (
        site.post("/_outpost/register", json=child, headers=bearer(RUN_CONTROL)).status_code == 403
    )
    assert site.get("/_outpost/status").json()["children"] == []
    assert site.post("/_outpost/register", json=child, headers=bearer(REGISTER)).status_code == 200
    assert [c["name"] for c in site.get("/_outpost/status").json()["children"]] == ["node-7"]


def test_a_leaf_takes_no_bearer_command(leaf: AppClient) -> None:
    for token in (RUN_CONTROL, REGISTER):
        answer = leaf.post("/_outpost/flush", json={"run": 1}, headers=bearer(token))
        assert answer.status_code == 403
    assert epoch_of(leaf) == 0


def test_a_flush_signed_by_the_parent_is_obeyed_once(leaf: AppClient) -> None:
    raw, headers = signed_flush({"run": 5, "epoch": 4, "path": ["site"]})
    first = leaf.post("/_outpost/flush", content=raw, headers=headers)
    assert first.status_code == 200 and first.json()["epoch"] == 4
    replayed = leaf.post("/_outpost/flush", content=raw, headers=headers)
    assert replayed.status_code == 403
    assert "replayed" in replayed.json()["detail"]
    assert epoch_of(leaf) == 4


@pytest.mark.parametrize(
    "change",
    [
        lambda raw, h: (raw.replace(b'"epoch":4', b'"epoch":9'), h),  # altered body
        lambda raw, h: (
            raw,
            {**h, SIGNATURE_HEADER: h[SIGNATURE_HEADER].replace("to=node-1", "to=node-2")},
        ),
    ],
    ids=["altered-body", "altered-audience"],
)
def test_an_altered_signed_flush_is_refused(leaf: AppClient, change: object) -> None:
    assert callable(change)
    raw, headers = change(*signed_flush({"run": 5, "epoch": 4}))
    answer = leaf.post("/_outpost/flush", content=raw, headers=headers)
    assert answer.status_code == 403
    assert epoch_of(leaf) == 0


def test_stale_foreign_and_misaddressed_signatures_are_refused(leaf: AppClient) -> None:
    other, _ = generate_keypair()
    for raw, headers in (
        signed_flush({"run": 1}, at=time.time() - 120),  # captured two minutes ago
        signed_flush({"run": 1}, key=other),  # a key that is not the tree's
        signed_flush({"run": 1}, to="node-2"),  # meant for a sibling
    ):
        assert leaf.post("/_outpost/flush", content=raw, headers=headers).status_code == 403
    assert epoch_of(leaf) == 0


@pytest.mark.parametrize("epoch", [9223372036854775807, 2**53, 1_000_001])
def test_an_absurd_epoch_is_refused_with_400(site: AppClient, epoch: int) -> None:
    answer = site.post(
        "/_outpost/flush", json={"run": 1, "epoch": epoch}, headers=bearer(RUN_CONTROL)
    )
    assert answer.status_code == 400
    body = answer.json()
    assert body["error"] == "bad request" and "out of range" in body["detail"]
    assert body["accepted"] == "at most the current epoch + 1000000"
    assert epoch_of(site) == 0
    ok = site.post(
        "/_outpost/flush", json={"run": 1, "epoch": 1_000_000}, headers=bearer(RUN_CONTROL)
    )
    assert ok.status_code == 200 and epoch_of(site) == 1_000_000


def test_an_absurd_epoch_from_upstream_is_not_adopted(origin: ScriptedOrigin) -> None:
    headers = {"cache-control": "public, max-age=60", "outpost-epoch": str(10**17)}
    origin.script("/a", Answer(200, headers, b"x"))
    origin.script("/b", Answer(200, {**headers, "outpost-epoch": "7"}, b"y"))
    with make_proxy(origin, max_epoch_step=10) as proxy:
        assert proxy.get("/a").status_code == 200
        assert epoch_of(proxy) == 0
        proxy.get("/b")
        assert epoch_of(proxy) == 7


def test_settings_refuse_redis_without_a_key_and_one_token_for_both_roles() -> None:
    with pytest.raises(SettingsError, match="shared_tier_key"):
        ProxySettings(upstreams=(UPSTREAM,), redis="redis://127.0.0.1:6379/0")
    with pytest.raises(SettingsError, match="register_token equals"):
        ProxySettings(upstreams=(UPSTREAM,), run_control_token="same", register_token="same")
    with pytest.raises(SettingsError, match="does not match"):
        ProxySettings(
            upstreams=(UPSTREAM,), tree_signing_key=SIGNING, tree_public_key=generate_keypair()[1]
        )
    derived = ProxySettings(upstreams=(UPSTREAM,), tree_signing_key=SIGNING)
    assert derived.tree_public_key == PUBLIC


@given(
    st.binary(max_size=300), st.text(min_size=1, max_size=40), st.binary(min_size=1, max_size=40)
)
def test_only_the_sealed_bytes_under_their_key_and_secret_unseal(
    data: bytes, key: str, secret: bytes
) -> None:
    sealed = seal(secret, key, data)
    assert unseal(secret, key, sealed) == data
    assert unseal(secret + b"x", key, sealed) is None
    assert unseal(secret, key + "x", sealed) is None
    assert unseal(secret, key, data) is None  # unsigned bytes
    flipped = bytearray(sealed)
    flipped[-1 if data else 5] ^= 1
    assert unseal(secret, key, bytes(flipped)) is None


def test_a_command_replayed_to_another_worker_is_refused(
    origin: ScriptedOrigin, tmp_path: Path
) -> None:
    """Worker processes share a state directory; two apps over one stand for two workers."""
    shared = {"register_token": REGISTER, "tree_public_key": PUBLIC, "state_dir": tmp_path}
    raw, headers = signed_flush({"run": 5})
    with make_proxy(origin, **shared) as first, make_proxy(origin, **shared) as second:
        assert first.post("/_outpost/flush", content=raw, headers=headers).status_code == 200
        replayed = second.post("/_outpost/flush", content=raw, headers=headers)
    assert replayed.status_code == 403
    assert "replayed" in replayed.json()["detail"]
