"""Signed commands down the cache tree: what a parent sends its children, and how they check it.

Run control's bearer token stays at the top of the tree. A proxy forwards a flush or a warm to
its children signed with the tree's Ed25519 *signing* key; a child holds only the *public* key,
so a compromised child can check commands but never make one. The signature covers the
method, the path, the child it is meant for (its name: a command captured at one child is
refused by every other), the time, a random nonce and the SHA-256 of the body (the run, the
epoch, the URLs to warm). A child refuses a command older or newer than `window` seconds and
a nonce it has seen inside that window, so a captured command cannot be played again.

No I/O here: keys come in as text, time comes in as an argument.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import secrets
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

__all__ = [
    "SIGNATURE_HEADER",
    "BadSignature",
    "NonceCache",
    "Nonces",
    "Signed",
    "Signer",
    "Verifier",
    "generate_keypair",
    "public_key_of",
]

SIGNATURE_HEADER = "outpost-signature"
_FIELDS = re.compile(r"^v1 t=(\d{1,12}) n=([0-9a-f]{32}) to=([^ ]{1,128}) s=([A-Za-z0-9_-]{86})$")


class BadSignature(ValueError):
    """A command whose signature is missing, malformed, stale, replayed or wrong."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str, size: int, what: str) -> bytes:
    try:
        raw = base64.urlsafe_b64decode(text.strip() + "=" * (-len(text.strip()) % 4))
    except (binascii.Error, ValueError):
        raise ValueError(f"{what} is not base64url") from None
    if len(raw) != size or _b64(raw) != text.strip():  # one spelling per value: no malleability
        raise ValueError(f"{what} must be {size} bytes, base64url-encoded")
    return raw


def generate_keypair() -> tuple[str, str]:
    """A new (signing key, public key), each as base64url text for a setting."""
    seed = secrets.token_bytes(32)
    return _b64(seed), public_key_of(_b64(seed))


def public_key_of(signing_key: str) -> str:
    """The public key (base64url) that checks what `signing_key` signs."""
    private = Ed25519PrivateKey.from_private_bytes(_unb64(signing_key, 32, "tree signing key"))
    return _b64(private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))


def _message(method: str, path: str, audience: str, at: int, nonce: str, body: bytes) -> bytes:
    digest = hashlib.sha256(body).hexdigest()
    fields = ("outpost-tree-v1", method.upper(), path, audience, str(at), nonce, digest)
    return "\n".join(fields).encode()


@dataclass(frozen=True)
class Signed:
    """What a verified command said about itself."""

    audience: str
    at: int
    nonce: str


class Signer:
    def __init__(self, signing_key: str) -> None:
        self._key = Ed25519PrivateKey.from_private_bytes(
            _unb64(signing_key, 32, "tree signing key")
        )

    def header(self, method: str, path: str, audience: str, body: bytes, now: float) -> str:
        """The `Outpost-Signature` value for sending `body` to the child named `audience`."""
        at = int(now)
        nonce = secrets.token_hex(16)
        message = _message(method, path, audience, at, nonce, body)
        return f"v1 t={at} n={nonce} to={audience} s={_b64(self._key.sign(message))}"


class Nonces(Protocol):
    def first_time(self, nonce: str, now: float) -> bool: ...


@dataclass
class NonceCache:
    """Nonces seen within the freshness window; older ones are forgotten (bounded memory)."""

    window: float
    limit: int = 100_000
    _seen: OrderedDict[str, float] = field(default_factory=OrderedDict)

    def first_time(self, nonce: str, now: float) -> bool:
        """True once per nonce inside the window; False for a replay."""
        while self._seen and (
            next(iter(self._seen.values())) < now - 2 * self.window or len(self._seen) > self.limit
        ):
            self._seen.popitem(last=False)
        if nonce in self._seen:
            return False
        self._seen[nonce] = now
        return True


class Verifier:
    def __init__(self, public_key: str, window: float = 30.0, nonces: Nonces | None = None) -> None:
        """`nonces`: where used nonces are kept; shared by worker processes if they are many."""
        self._key = Ed25519PublicKey.from_public_bytes(_unb64(public_key, 32, "tree public key"))
        self.window = window
        self._nonces = nonces or NonceCache(window)

    def verify(
        self, header: str | None, method: str, path: str, me: str, body: bytes, now: float
    ) -> Signed:
        """The command's claims if `header` signs exactly this request for the proxy `me`,
        fresh and not seen before; else `BadSignature` saying why."""
        if not header:
            raise BadSignature("no Outpost-Signature")
        match = _FIELDS.match(header.strip())
        if match is None:
            raise BadSignature("malformed Outpost-Signature")
        at, nonce, audience, signature = int(match[1]), match[2], match[3], match[4]
        if audience != me:
            raise BadSignature(f"signed for {audience!r}, not for this proxy")
        if abs(now - at) > self.window:
            raise BadSignature(
                f"signed at {at}, {int(now - at)} s off: outside the window of {self.window:g} s"
            )
        message = _message(method, path, audience, at, nonce, body)
        try:
            self._key.verify(_unb64(signature, 64, "signature"), message)
        except (InvalidSignature, ValueError):
            raise BadSignature("signature does not match the request") from None
        if not self._nonces.first_time(nonce, now):
            raise BadSignature("nonce already used: a replayed command")
        return Signed(audience, at, nonce)
