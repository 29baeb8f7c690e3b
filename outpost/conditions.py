"""A run's conditions: one digest of what a run is configured with, and how two sets differ.

A run's conditions are the records of its resolve answer: for every record, label and channel,
the tag, the IOV and the payload hash. Payloads are addressed by their SHA-256, so the digest
of the records stands for every byte a node configures the run with, once each payload's bytes
are checked against their hash. The origin computes it for a run record (`POST /v1/runs/R`),
a cache for what it holds (`/_outpost/attest`), a node for what it received
(`Client.fetch_run(..., expect=record)`), and all three agree exactly when the bytes do.

The digest leaves out the request (global tag, run, snapshot): two runs configured with the
same conditions have the same digest, and a resolve pinned to the run record's snapshot has
the digest of the resolve answer the run was taken with.

A cache that names a payload it does not hold, or holds bytes that hash to something else,
writes `missing:<hash>` or `corrupt:<hash>` in that record's place (`held_payload`), so its
digest differs and the record is named.

Pure: no I/O.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import orjson

__all__ = [
    "CONDITION_FIELDS",
    "Difference",
    "conditions",
    "conditions_digest",
    "differences",
    "held_payload",
    "payload_map",
    "record_key",
]

CONDITION_FIELDS: Final = (
    "record",
    "label",
    "tag",
    "time_type",
    "channel",
    "since",
    "until",
    "payload",
    "size",
)
MISSING: Final = "missing:"  # the cache names this payload but does not hold its bytes
CORRUPT: Final = "corrupt:"  # the cache holds bytes for it that hash to something else


def record_key(record: Mapping[str, Any]) -> str:
    """`record/label/channel`: one record of a resolve answer, as people name it."""
    return f"{record['record']}/{record['label']}/{record['channel']}"


def conditions(records: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The records in one order (record, label, channel) with exactly `CONDITION_FIELDS`."""
    chosen = [{name: record.get(name) for name in CONDITION_FIELDS} for record in records]
    return sorted(chosen, key=lambda r: (str(r["record"]), str(r["label"]), _int(r["channel"])))


def conditions_digest(records: Iterable[Mapping[str, Any]]) -> str:
    """SHA-256 (hex) of the records in their one JSON spelling."""
    return hashlib.sha256(orjson.dumps(conditions(records))).hexdigest()


def payload_map(records: Iterable[Mapping[str, Any]]) -> dict[str, str | None]:
    """`record_key` → the payload each record names (None: no IOV covers the run)."""
    return {record_key(r): r.get("payload") for r in conditions(records)}


def held_payload(named: str | None, held_sha256: str | None) -> str | None:
    """What a cache holds in place of the payload hash `named`: the hash itself when it holds
    bytes that hash to it, else `missing:` or `corrupt:` followed by the hash."""
    if named is None:
        return None
    if held_sha256 is None:
        return MISSING + named
    return named if held_sha256 == named else CORRUPT + named


@dataclass(frozen=True, slots=True)
class Difference:
    """One record on which two sets of conditions disagree (None: the record is absent)."""

    key: str
    expected: str | None
    found: str | None

    def describe(self) -> str:
        return f"{self.key}: expected {_payload(self.expected)}, found {_payload(self.found)}"


def differences(
    expected: Mapping[str, str | None], found: Mapping[str, str | None], *, absent: str = "absent"
) -> list[Difference]:
    """Records whose payload differs between two `payload_map`s, in key order; a record only
    one side has shows `absent` on the other."""
    keys = sorted({*expected, *found})
    return [
        Difference(key, expected.get(key, absent), found.get(key, absent))
        for key in keys
        if expected.get(key, absent) != found.get(key, absent)
    ]


def _payload(value: str | None) -> str:
    if value is None:
        return "no payload"
    for prefix, said in ((MISSING, "not held"), (CORRUPT, "corrupt bytes")):
        if value.startswith(prefix):
            return f"{said} ({value[len(prefix) : len(prefix) + 12]}…)"
    return value[:12] + "…" if len(value) == 64 else value


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0
