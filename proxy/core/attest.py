"""Attestation: which conditions each cache of the tree holds for a run, counted on the way up.

Run control asks the top proxy (`POST /_outpost/attest`) with the digest the run should have
(`outpost.conditions`). Every cache works out the digest of what it holds for the run right now
(`held_state`: its stored resolve answer, every payload that answer names checked against its
hash), asks its children, and answers with a `Tally`: how many caches hold each digest, and for
the caches that hold another one their names and, for a few distinct digests, the records they
hold, so run control can say which record differs. Caches that agree are only counted: the
answer for 2000 agreeing caches is a few hundred bytes, not 2000 digests.

Pure: no I/O. `proxy.attest` reads the store and sends the fan-out.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from outpost.conditions import conditions_digest, held_payload, payload_map

__all__ = [
    "NOT_HELD",
    "HeldState",
    "Tally",
    "TallyError",
    "decode_body",
    "held_state",
    "named_payloads",
]

NOT_HELD: Final = "not-held"  # the digest of a cache that holds no resolve answer for the run
UNREADABLE: Final = "unreadable"  # ... of one whose stored answer is not a resolve document
DETAILED_DIGESTS: Final = 8  # distinct wrong digests whose records an answer carries
MAX_RECORDS: Final = 100_000  # records of one held answer shown (a resolve answer's own bound)
MAX_DECODED_BYTES: Final = 256 * 1024 * 1024  # a gzip answer larger than this is unreadable
_SHA256: Final = re.compile(r"[0-9a-f]{64}")


class TallyError(ValueError):
    """A child's answer is not a tally: it counts as a cache that did not answer."""


@dataclass(frozen=True, slots=True)
class HeldState:
    """What one cache holds for a run: a digest, and the records behind it (empty when it
    holds no readable resolve answer)."""

    digest: str
    held: dict[str, str | None]


def decode_body(body: bytes, content_encoding: bytes | None) -> bytes | None:
    """A stored answer's bytes as the origin made them (gzip undone), None if they cannot be."""
    if not content_encoding or content_encoding.strip().lower() == b"identity":
        return body
    if content_encoding.strip().lower() != b"gzip":
        return None
    inflater = zlib.decompressobj(wbits=31)
    try:
        decoded = inflater.decompress(body, MAX_DECODED_BYTES)
    except zlib.error:
        return None
    return None if inflater.unconsumed_tail or not inflater.eof else decoded


def named_payloads(resolve_body: bytes) -> list[str] | None:
    """The payload hashes a resolve answer names, in order; None if it is not one."""
    records = _records(resolve_body)
    if records is None:
        return None
    named = (r.get("payload") for r in records)
    return list(dict.fromkeys(h for h in named if isinstance(h, str) and _SHA256.fullmatch(h)))


def held_state(resolve_body: bytes | None, held_sha256: Mapping[str, str | None]) -> HeldState:
    """The state of a cache holding `resolve_body` (None: nothing) and payload bytes whose
    SHA-256 is `held_sha256[hash]` for each hash it names (None: not held)."""
    if resolve_body is None:
        return HeldState(NOT_HELD, {})
    records = _records(resolve_body)
    if records is None:
        return HeldState(UNREADABLE, {})
    as_held = [
        {**r, "payload": held_payload(r.get("payload"), held_sha256.get(str(r.get("payload"))))}
        for r in records
    ]
    return HeldState(conditions_digest(as_held), payload_map(as_held))


def _records(body: bytes) -> list[dict[str, Any]] | None:
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    records = document.get("records") if isinstance(document, dict) else None
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        return None
    return records


@dataclass
class _Group:
    caches: list[str] = field(default_factory=list)
    held: dict[str, str | None] | None = None


@dataclass
class Tally:
    """The attestation of a subtree: caches counted by digest, and who holds another one."""

    expected: str
    digests: dict[str, int] = field(default_factory=dict)
    differ: dict[str, _Group] = field(default_factory=dict)
    failed: list[dict[str, str]] = field(default_factory=list)

    @property
    def answered(self) -> int:
        return sum(self.digests.values())

    def add(self, name: str, state: HeldState) -> None:
        """One cache's own state."""
        self.digests[state.digest] = self.digests.get(state.digest, 0) + 1
        if state.digest != self.expected:
            group = self.differ.setdefault(state.digest, _Group())
            group.caches.append(name)
            if group.held is None and state.held:
                group.held = dict(state.held)

    def merge(self, answer: object) -> None:
        """A child's answer for its subtree; `TallyError` (nothing merged) if it is not one."""
        digests, differ, failed = _checked(answer)
        for digest, count in digests.items():
            self.digests[digest] = self.digests.get(digest, 0) + count
        for item in differ:
            group = self.differ.setdefault(item["digest"], _Group())
            group.caches.extend(item["caches"])
            if group.held is None and item.get("held"):
                group.held = dict(item["held"])
        self.failed.extend(failed)

    def fail(self, failure: dict[str, str]) -> None:
        self.failed.append(failure)

    def to_json(self) -> dict[str, Any]:
        groups = sorted(self.differ.items(), key=lambda kv: (-len(kv[1].caches), kv[0]))
        return {
            "expected": self.expected,
            "answered": self.answered,
            "agree": self.digests.get(self.expected, 0),
            "digests": dict(sorted(self.digests.items())),
            "differ": [
                {
                    "digest": digest,
                    "caches": sorted(group.caches),
                    "held": group.held if index < DETAILED_DIGESTS else None,
                }
                for index, (digest, group) in enumerate(groups)
            ],
            "failed": sorted(self.failed, key=lambda f: f.get("name", "")),
        }


def _checked(
    answer: object,
) -> tuple[dict[str, int], list[dict[str, Any]], list[dict[str, str]]]:
    if not isinstance(answer, dict):
        raise TallyError("not a JSON object")
    digests, differ, failed = answer.get("digests"), answer.get("differ"), answer.get("failed")
    if not isinstance(digests, dict) or not all(
        isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool) and v >= 0
        for k, v in digests.items()
    ):
        raise TallyError("digests is not an object of counts")
    if not isinstance(differ, list) or not all(_is_group(item) for item in differ):
        raise TallyError("differ is not a list of {digest, caches, held}")
    if not isinstance(failed, list) or not all(
        isinstance(f, dict) and all(isinstance(v, str) for v in f.values()) for f in failed
    ):
        raise TallyError("failed is not a list of failures")
    return digests, differ, failed


def _is_group(item: object) -> bool:
    if not isinstance(item, dict) or not isinstance(item.get("digest"), str):
        return False
    caches, held = item.get("caches"), item.get("held")
    if not isinstance(caches, list) or not all(isinstance(c, str) for c in caches):
        return False
    return held is None or (
        isinstance(held, dict)
        and len(held) <= MAX_RECORDS
        and all(isinstance(v, str | None) for v in held.values())
    )
