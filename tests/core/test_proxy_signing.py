"""`proxy.core.signing`: a signed command is accepted once, by the child it names, unaltered and
fresh; the public key a child holds can check commands but not make them."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxy.core.signing import BadSignature, NonceCache, Signer, Verifier, generate_keypair

SIGNING, PUBLIC = generate_keypair()
NOW = 1_700_000_000.0
BODY = b'{"run":7,"epoch":3,"path":["site"]}'


def verifier() -> Verifier:
    return Verifier(PUBLIC, window=30)


def signed(body: bytes = BODY, to: str = "node-1", at: float = NOW) -> str:
    return Signer(SIGNING).header("POST", "/_outpost/flush", to, body, at)


def test_a_signed_command_is_accepted_by_the_child_it_names() -> None:
    claims = verifier().verify(signed(), "POST", "/_outpost/flush", "node-1", BODY, NOW + 1)
    assert claims.audience == "node-1" and claims.at == int(NOW)


def test_the_same_command_twice_is_a_replay() -> None:
    check, header = verifier(), signed()
    check.verify(header, "POST", "/_outpost/flush", "node-1", BODY, NOW)
    with pytest.raises(BadSignature, match="replayed"):
        check.verify(header, "POST", "/_outpost/flush", "node-1", BODY, NOW + 2)


@pytest.mark.parametrize("skew", [-31, 31, 3600, -86_400])
def test_a_command_outside_the_window_is_refused(skew: int) -> None:
    with pytest.raises(BadSignature, match="outside the window"):
        verifier().verify(signed(), "POST", "/_outpost/flush", "node-1", BODY, NOW + skew)


def test_a_command_signed_for_another_child_is_refused() -> None:
    with pytest.raises(BadSignature, match="not for this proxy"):
        verifier().verify(signed(to="node-2"), "POST", "/_outpost/flush", "node-1", BODY, NOW)


@pytest.mark.parametrize(
    ("method", "path"), [("POST", "/_outpost/warm"), ("PUT", "/_outpost/flush")]
)
def test_a_signature_does_not_cover_another_route(method: str, path: str) -> None:
    with pytest.raises(BadSignature, match="does not match"):
        verifier().verify(signed(), method, path, "node-1", BODY, NOW)


@given(st.binary(max_size=200).filter(lambda b: b != BODY))
def test_any_other_body_is_refused(body: bytes) -> None:
    with pytest.raises(BadSignature, match="does not match"):
        verifier().verify(signed(), "POST", "/_outpost/flush", "node-1", body, NOW)


@given(st.integers(0, 85), st.sampled_from("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"))
def test_any_altered_signature_is_refused(position: int, letter: str) -> None:
    header = signed()
    head, _, signature = header.rpartition("s=")
    altered = signature[:position] + letter + signature[position + 1 :]
    if altered == signature:
        return
    with pytest.raises(BadSignature):
        verifier().verify(f"{head}s={altered}", "POST", "/_outpost/flush", "node-1", BODY, NOW)


def test_a_key_other_than_the_trees_cannot_sign() -> None:
    other_signing, _ = generate_keypair()
    forged = Signer(other_signing).header("POST", "/_outpost/flush", "node-1", BODY, NOW)
    with pytest.raises(BadSignature, match="does not match"):
        verifier().verify(forged, "POST", "/_outpost/flush", "node-1", BODY, NOW)


@pytest.mark.parametrize("header", [None, "", "Bearer x", "v1 t=1 n=zz to=a s=b", "v1 " * 40])
def test_a_missing_or_malformed_signature_is_refused(header: str | None) -> None:
    with pytest.raises(BadSignature):
        verifier().verify(header, "POST", "/_outpost/flush", "node-1", BODY, NOW)


def test_the_public_key_is_not_a_signing_key() -> None:
    with pytest.raises(ValueError):
        Signer(PUBLIC + "AAAA")  # 32 bytes public + anything: never a valid seed of the tree's


def test_seen_nonces_are_forgotten_after_the_window_and_bounded() -> None:
    cache = NonceCache(window=30, limit=3)
    assert cache.first_time("a", 0) and not cache.first_time("a", 10)
    assert cache.first_time("a", 100)  # long past the window: the timestamp check refuses it
    for nonce in "bcdef":
        cache.first_time(nonce, 100)
    assert len(cache._seen) <= 4


def test_a_signature_spelled_another_way_is_refused() -> None:
    """The last base64url character of 64 bytes carries 4 unused bits: a different spelling of
    the same signature is refused, so each command has exactly one valid header."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    header = signed()
    respelled = header[:-1] + alphabet[alphabet.index(header[-1]) ^ 1]
    with pytest.raises(BadSignature, match="does not match"):
        verifier().verify(respelled, "POST", "/_outpost/flush", "node-1", BODY, NOW)
