"""`POST /_outpost/attest`: the conditions this proxy and its subtree hold for a run.

Run control sends `{"globaltag", "run", "lumi", "expected"}` (`expected`: the digest the run's
conditions have at the origin, `outpost.conditions`). This proxy reads what it holds now, from
memory or Redis, without fetching anything: the stored resolve answer for the run (each stored
coding of it) and every payload it names, whose bytes are hashed again. It sends the same
request to its children, signed, and answers with the tally of its subtree
(`proxy.core.attest.Tally`): counts per digest, and the names and records of the caches that
hold something else.
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeGuard

from outpost.errors import BadRequest
from outpost.urls import LUMI_MAX, RUN_MAX, Payload, Resolve, is_plain_name
from proxy.core.attest import HeldState, Tally, TallyError, decode_body, held_state, named_payloads
from proxy.core.keys import primary_key, variant_key
from proxy.core.shared import CODING_REQUESTS
from proxy.storage.base import Store, Stored, VaryMarker
from proxy.tree import child_failure

if TYPE_CHECKING:
    from proxy.app import ProxyApp

__all__ = ["AttestRequest", "attest", "parse_attest"]

_EXAMPLE = {"globaltag": "GT", "run": 500, "lumi": 1, "expected": "<sha256 hex>"}


@dataclass(frozen=True)
class AttestRequest:
    globaltag: str
    run: int
    lumi: int
    expected: str  # the digest of the run's conditions at the origin
    path: list[str]  # the proxies the request came through (a loop is answered empty)

    def forwarded(self, name: str) -> dict[str, Any]:
        return {
            "globaltag": self.globaltag,
            "run": self.run,
            "lumi": self.lumi,
            "expected": self.expected,
            "path": [*self.path, name],
        }


def parse_attest(document: dict[str, Any]) -> AttestRequest:
    """The attest request in a command's body; BadRequest saying what is wrong."""
    globaltag, run = document.get("globaltag"), document.get("run")
    lumi, expected = document.get("lumi", 1), document.get("expected")
    path = document.get("path", [])
    if not isinstance(globaltag, str) or not is_plain_name(globaltag):
        raise BadRequest("attest needs a plain `globaltag`", accepted=_EXAMPLE)
    if not _is_int(run, RUN_MAX) or not _is_int(lumi, LUMI_MAX):
        raise BadRequest("attest needs a `run` (and `lumi`) number", accepted=_EXAMPLE)
    if not isinstance(expected, str) or not 1 <= len(expected) <= 128:
        raise BadRequest("attest needs the `expected` conditions digest", accepted=_EXAMPLE)
    if not isinstance(path, list) or not all(isinstance(p, str) for p in path):
        raise BadRequest("path must be the list of proxies the attest came through")
    return AttestRequest(globaltag, run, lumi, expected, path)


async def attest(app: ProxyApp, request: AttestRequest, children: list[Any]) -> dict[str, Any]:
    """The tally of this proxy and its subtree for `request`."""
    tally = Tally(request.expected)
    if app.name in request.path:  # a loop in the tree: this proxy has been counted already
        return {"name": app.name, **tally.to_json()}
    mine, (answers, failed) = await asyncio.gather(
        own_state(app.store, request),
        app.fan_out.collect(children, "/_outpost/attest", request.forwarded(app.name)),
    )
    tally.add(app.name, mine)
    for failure in failed:
        tally.fail(failure)
    for child, answer in answers:
        try:
            tally.merge(answer)
        except TallyError as exc:
            tally.fail(child_failure(child, f"answer is not an attestation: {exc}"))
    return {"name": app.name, "run": request.run, **tally.to_json()}


async def own_state(store: Store, request: AttestRequest) -> HeldState:
    """What this cache holds for the run: each stored coding of the resolve answer is
    attested; the first that differs from the expected digest is the one reported."""
    url = Resolve(request.globaltag, request.run, request.lumi).url()
    bodies = await _stored_bodies(store, primary_key(*url.partition("?")[::2]))
    if not bodies:
        return held_state(None, {})
    named = dict.fromkeys(h for body in bodies for h in named_payloads(body) or [])
    held = await _held_payloads(store, list(named))  # once, whichever codings name them
    states = [held_state(body, held) for body in bodies]
    return next((s for s in states if s.digest != request.expected), states[0])


async def _stored_bodies(store: Store, key: str) -> list[bytes]:
    """The stored 200 answers under `key`, each variant's bytes decoded; what cannot be
    decoded is b"" (not a resolve document, so attested unreadable)."""
    stored = await store.get(key)
    if stored is None:
        return []
    entries: list[Stored | None] = [stored]
    if isinstance(stored, VaryMarker):
        keys = dict.fromkeys(variant_key(key, stored.vary, h) for h in CODING_REQUESTS)
        entries = [await store.get(k) for k in keys]
    bodies = []
    for entry in entries:
        if entry is None or isinstance(entry, VaryMarker) or entry.status != 200:
            continue
        coding = next((v for n, v in entry.headers if n == b"content-encoding"), None)
        decoded = decode_body(entry.body, coding)
        bodies.append(b"" if decoded is None else decoded)
    return bodies


async def _held_payloads(store: Store, hashes: list[str]) -> dict[str, str | None]:
    """The SHA-256 of the bytes held for each payload hash (None: not held), hashed in a
    thread: a run's payloads can be hundreds of megabytes."""
    bodies: dict[str, bytes | None] = {}
    for digest in hashes:
        entry = await store.get(Payload(digest).url())
        held = entry is not None and not isinstance(entry, VaryMarker) and entry.status == 200
        bodies[digest] = entry.body if held else None  # type: ignore[union-attr]

    def hash_all() -> dict[str, str | None]:
        return {d: None if b is None else hashlib.sha256(b).hexdigest() for d, b in bodies.items()}

    return await asyncio.to_thread(hash_all)


def _is_int(value: object, high: int) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= high
