"""The client's requests and answers: canonical queries in, typed results out, bytes checked.

`resolve_query` and `payload_query` build the one canonical URL with `outpost.urls` and refuse,
before anything is sent, what no origin would accept. `decode_resolution` turns a resolve answer
into a `Resolution` and `verify_payload` checks payload bytes against their SHA-256; both raise
`Unusable` for an answer that must not be used, and the walk then asks the next endpoint.

Pure: standard library, orjson and `outpost` only.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, TypeVar

import orjson

from outpost import errors as server_errors
from outpost.client.errors import BadRequest, ConditionsMismatch, FailureKind
from outpost.conditions import conditions_digest, differences, payload_map
from outpost.urls import Payload, Resolve, RunQuery, is_plain_name, parse, parse_time

__all__ = [
    "Record",
    "Resolution",
    "RunConditions",
    "RunRecord",
    "Unusable",
    "check_conditions",
    "decode_resolution",
    "decode_run_record",
    "payload_query",
    "resolve_query",
    "run_query",
    "verify_payload",
]

Q = TypeVar("Q", Resolve, Payload, RunQuery)
_HEX: Final = frozenset("0123456789abcdef")
_RECORD_FIELDS: Final[dict[str, tuple[type, ...]]] = {
    "record": (str,),
    "label": (str,),
    "tag": (str,),
    "time_type": (str,),
    "channel": (int,),
    "since": (int,),
    "until": (int, type(None)),
    "payload": (str, type(None)),
    "size": (int, type(None)),
}


class Unusable(Exception):
    """An answer with status 200 that must not be used: wrong bytes or an unreadable body."""

    def __init__(self, kind: FailureKind, detail: str) -> None:
        super().__init__(detail)
        self.kind: FailureKind = kind
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Record:
    """One record/label of the global tag and the IOV that covers the requested key."""

    record: str
    label: str
    tag: str
    time_type: str
    channel: int
    since: int
    until: int | None
    payload: str | None  # SHA-256 of the payload; None when no IOV covers the key
    size: int | None


@dataclass(frozen=True, slots=True)
class Resolution:
    """The answer to `resolve`: every record of a global tag for one (run, lumi)."""

    globaltag: str
    run: int
    lumi: int
    time: int | None
    snapshot: str | None
    records: tuple[Record, ...]

    @property
    def payloads(self) -> tuple[str, ...]:
        """Distinct payload hashes, in record order."""
        return tuple(dict.fromkeys(r.payload for r in self.records if r.payload is not None))


@dataclass(frozen=True, slots=True)
class RunConditions:
    """What a farm node starts a run with: the resolution and every payload it names."""

    resolution: Resolution
    payloads: Mapping[str, bytes]  # hash → verified bytes

    @property
    def records(self) -> tuple[Record, ...]:
        return self.resolution.records

    def payload_of(self, record: str, label: str = "") -> bytes | None:
        """The bytes for `record`/`label`; None if it has no payload. KeyError if no such record."""
        for entry in self.records:
            if (entry.record, entry.label) == (record, label):
                return None if entry.payload is None else self.payloads[entry.payload]
        raise KeyError(f"{record!r} (label {label!r}) is not in {self.resolution.globaltag}")


@dataclass(frozen=True, slots=True)
class RunRecord:
    """What run control recorded for a run (`GET /v1/runs/R`): the conditions every cache held
    when it started, their digest, and the snapshot that reproduces them."""

    run: int
    globaltag: str
    lumi: int
    digest: str
    snapshot: str  # ISO 8601, UTC, to the microsecond
    records: tuple[Record, ...]
    attestation: Mapping[str, Any]
    by: str | None
    created_at: str

    @property
    def snapshot_micros(self) -> int:
        """The snapshot as microseconds since the epoch (`resolve(..., snapshot=)`)."""
        return parse_time(self.snapshot)


def check_conditions(resolution: Resolution, expect: RunRecord) -> None:
    """Raise `ConditionsMismatch`, naming every record that differs, unless `resolution` holds
    exactly the conditions of the run record (its payloads' bytes are checked by hash as they
    arrive, so equal records mean equal bytes)."""
    asked = (resolution.globaltag, resolution.run, resolution.lumi)
    if asked != (expect.globaltag, expect.run, expect.lumi):
        recorded = (expect.globaltag, expect.run, expect.lumi)
        raise ConditionsMismatch(f"the run record is for {recorded}, not {asked}")
    received = [_fields(r) for r in resolution.records]
    if conditions_digest(received) == expect.digest:
        return
    found = differences(
        payload_map(_fields(r) for r in expect.records), payload_map(received), absent="absent"
    )
    raise ConditionsMismatch(
        f"run {expect.run}: the conditions received ({conditions_digest(received)[:16]}) are "
        f"not the run record's ({expect.digest[:16]})",
        tuple(d.describe() for d in found) or ("a record's tag or interval differs",),
    )


def _fields(record: Record) -> dict[str, Any]:
    return {name: getattr(record, name) for name in _RECORD_FIELDS}


# --- requests --------------------------------------------------------------------------------


def resolve_query(
    globaltag: str,
    run: int,
    lumi: int | None = None,
    *,
    time: int | None = None,
    snapshot: int | None = None,
) -> Resolve:
    if not isinstance(globaltag, str) or not is_plain_name(globaltag):
        problem = f"global tag name {str(globaltag)[:200]!r} is not a plain name"
        raise _refused("/v1/resolve/…", server_errors.BadRequest(problem))
    query = Resolve(globaltag, run, 1 if lumi is None else lumi, time=time, snapshot=snapshot)
    return _checked(query)


def payload_query(digest: str) -> Payload:
    if not isinstance(digest, str) or len(digest) != 64 or not _HEX.issuperset(digest.lower()):
        problem = server_errors.BadRequest(
            f"{str(digest)[:100]!r} is not a SHA-256 hash", accepted="64 hexadecimal digits"
        )
        raise _refused("/v1/payloads/…", problem)
    return _checked(Payload(digest.lower()))


def run_query(run: int) -> RunQuery:
    return _checked(RunQuery(run))


def _checked(query: Q) -> Q:
    """The query itself if the origin's parser reads its URL back as the same query."""
    url = query.url()
    path, _, query_string = url.partition("?")
    try:
        parsed = parse(path, query_string)
    except server_errors.OutpostError as exc:
        raise _refused(url, exc) from None
    if parsed != query:
        raise _refused(url, server_errors.BadRequest(f"{query!r} has no canonical URL"))
    return query


def _refused(path: str, problem: server_errors.OutpostError) -> BadRequest:
    return BadRequest(path, 400, orjson.loads(problem.body()), endpoint=None)


# --- answers ---------------------------------------------------------------------------------


def verify_payload(digest: str, body: bytes) -> bytes:
    actual = hashlib.sha256(body).hexdigest()
    if actual != digest:
        raise Unusable("integrity", f"payload bytes hash to {actual}, not {digest}")
    return body


def decode_resolution(body: bytes, query: Resolve) -> Resolution:
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise Unusable("invalid", f"resolve answer is not JSON ({exc})") from None
    if not isinstance(document, dict) or not isinstance(document.get("records"), list):
        raise Unusable("invalid", "resolve answer has no list of records")
    asked = (query.globaltag, query.run, query.lumi)
    answered = (document.get("globaltag"), document.get("run"), document.get("lumi"))
    if answered != asked:
        raise Unusable("invalid", f"resolve answer is for {answered}, not {asked}")
    snapshot = document.get("snapshot")
    time = document.get("time")
    if not (snapshot is None or isinstance(snapshot, str)) or not _is_int_or_none(time):
        raise Unusable("invalid", "resolve answer has a malformed time or snapshot")
    return Resolution(
        globaltag=query.globaltag,
        run=query.run,
        lumi=query.lumi,
        time=time,
        snapshot=snapshot,
        records=tuple(_record(item) for item in document["records"]),
    )


def decode_run_record(body: bytes, query: RunQuery) -> RunRecord:
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise Unusable("invalid", f"run record is not JSON ({exc})") from None
    if not isinstance(document, dict) or document.get("run") != query.run:
        raise Unusable("invalid", f"answer is not the run record of run {query.run}")
    fields = {"globaltag": str, "lumi": int, "digest": str, "snapshot": str, "created_at": str}
    for name, kind in fields.items():
        if not isinstance(document.get(name), kind) or isinstance(document.get(name), bool):
            raise Unusable("invalid", f"run record has a bad {name!r}")
    records, attestation = document.get("records"), document.get("attestation")
    if not isinstance(records, list) or not isinstance(attestation, dict):
        raise Unusable("invalid", "run record has no records or attestation")
    by = document.get("by")
    return RunRecord(
        run=query.run,
        globaltag=document["globaltag"],
        lumi=document["lumi"],
        digest=document["digest"],
        snapshot=document["snapshot"],
        records=tuple(_record(item) for item in records),
        attestation=attestation,
        by=by if isinstance(by, str) else None,
        created_at=document["created_at"],
    )


def _record(item: Any) -> Record:
    if not isinstance(item, dict):
        raise Unusable("invalid", f"resolve answer has a record that is no object: {item!r:.100}")
    for name, types in _RECORD_FIELDS.items():
        value = item.get(name)
        if not isinstance(value, types) or isinstance(value, bool):
            raise Unusable("invalid", f"resolve answer record has a bad {name!r}: {item!r:.200}")
    digest = item["payload"]
    if digest is not None and (len(digest) != 64 or not _HEX.issuperset(digest)):
        raise Unusable("invalid", f"resolve answer names a malformed payload hash {digest!r:.100}")
    return Record(**{name: item[name] for name in _RECORD_FIELDS})


def _is_int_or_none(value: object) -> bool:
    return value is None or (isinstance(value, int) and not isinstance(value, bool))
