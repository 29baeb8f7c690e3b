"""Inputs of the write API: JSON bodies → validated, typed changes. Pure: no database here.

Every check that needs no database happens here, before a transaction starts: names are plain,
integers in range, a batch has no duplicate keys, a run tag's since is a run number.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import orjson

from origin.schema import TIME_TYPES
from outpost.errors import BadRequest, echo
from outpost.urls import DEFAULT_LUMI, INT64_MAX, LUMI_MAX, RUN_MAX, is_plain_name

__all__ = [
    "GlobalTagUpdate",
    "MapEntry",
    "NewIov",
    "NewTag",
    "RunRecordPost",
    "check_since",
    "parse_global_tag",
    "parse_iovs",
    "parse_new_tag",
    "parse_object_type",
    "parse_run_record",
]

MAX_TEXT = 4096
MAX_ATTESTATION: Final = 64 * 1024  # bytes of a run record's attestation, as JSON


@dataclass(frozen=True)
class NewTag:
    name: str
    time_type: str
    payload_type: str
    description: str = ""


@dataclass(frozen=True)
class NewIov:
    since: int
    payload: str
    channel: int = 0


@dataclass(frozen=True)
class MapEntry:
    record: str
    label: str
    tag: str


@dataclass(frozen=True)
class GlobalTagUpdate:
    entries: tuple[MapEntry, ...]
    description: str | None = None
    lock: bool = False


@dataclass(frozen=True)
class RunRecordPost:
    """What run control posts for a run: the global tag and lumi section it resolved, the
    digest of the conditions its caches attested (`outpost.conditions`), and the attestation
    itself (`attestation`: its JSON, as stored and served)."""

    globaltag: str
    digest: str
    attestation: str
    lumi: int = DEFAULT_LUMI


# --- pure parsing of request bodies --------------------------------------------------------


def _object(doc: Any, what: str, fields: Mapping[str, str]) -> dict[str, Any]:
    if not isinstance(doc, dict):
        raise BadRequest(f"{what} must be a JSON object", accepted=dict(fields))
    unknown = sorted(set(doc) - set(fields))
    if unknown:
        raise BadRequest(f"{what} has unknown fields {echo(unknown)}", accepted=dict(fields))
    return doc


def _text(doc: dict[str, Any], key: str, what: str, *, required: bool = True) -> str:
    value = doc.get(key, None if required else "")
    if not isinstance(value, str) or len(value) > MAX_TEXT:
        raise BadRequest(
            f"{what}.{key}={echo(value)} is not a string of at most {MAX_TEXT} characters",
            accepted=f"a string (quote it in YAML), <= {MAX_TEXT} characters",
        )
    return value


def _plain(value: str, what: str) -> str:
    if not is_plain_name(value):
        raise BadRequest(
            f"{what} {value[:200]!r} is not a plain name",
            accepted="letters, digits, '_', '.', '-', starting with a letter or digit, <= 128",
        )
    return value


def _integer(value: Any, what: str, low: int, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise BadRequest(
            f"{what}={echo(value)} is not an integer in {low}..{high}",
            accepted=f"a decimal integer in {low}..{high}",
        )
    return value


def parse_object_type(text: str) -> str:
    """The `object_type` of an uploaded payload: a plain name."""
    return _plain(text, "object_type")


def parse_new_tag(doc: Any) -> NewTag:
    fields = {
        "name": "plain name",
        "time_type": "|".join(TIME_TYPES),
        "payload_type": "plain name",
        "description": "text",
    }
    doc = _object(doc, "tag", fields)
    time_type = _text(doc, "time_type", "tag")
    if time_type not in TIME_TYPES:
        raise BadRequest(f"time_type {time_type!r} is not known", accepted=list(TIME_TYPES))
    return NewTag(
        name=_plain(_text(doc, "name", "tag"), "tag name"),
        time_type=time_type,
        payload_type=_plain(_text(doc, "payload_type", "tag"), "payload type"),
        description=_text(doc, "description", "tag", required=False),
    )


def parse_iovs(doc: Any, *, max_batch: int = 100_000) -> tuple[NewIov, ...]:
    fields = {"since": "int64 >= 0", "payload": "sha256 hex", "channel": "int64 >= 0"}
    doc = _object(doc, "body", {"iovs": f"list of {fields}"})
    items = doc.get("iovs")
    if not isinstance(items, list) or not 0 < len(items) <= max_batch:
        raise BadRequest(f"iovs must be a list of 1..{max_batch} IOVs", accepted=fields)
    batch = []
    for index, raw in enumerate(items):
        item = _object(raw, f"iovs[{index}]", fields)
        digest = _text(item, "payload", f"iovs[{index}]").lower()
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise BadRequest(
                f"iovs[{index}].payload is not a SHA-256 hash", accepted="64 hex digits"
            )
        batch.append(
            NewIov(
                since=_integer(item.get("since"), f"iovs[{index}].since", 0, INT64_MAX),
                payload=digest,
                channel=_integer(item.get("channel", 0), f"iovs[{index}].channel", 0, INT64_MAX),
            )
        )
    keys = [(i.channel, i.since) for i in batch]
    if len(set(keys)) != len(keys):
        raise BadRequest("the batch inserts the same (channel, since) twice")
    return tuple(batch)


def parse_global_tag(doc: Any) -> GlobalTagUpdate:
    fields = {"map": "list of {record, label, tag}", "description": "text", "state": "open|locked"}
    doc = _object(doc, "global tag", fields)
    entries = doc.get("map")
    if not isinstance(entries, list):
        raise BadRequest("map must be a list of {record, label, tag}", accepted=fields)
    parsed = []
    for index, raw in enumerate(entries):
        item = _object(
            raw,
            f"map[{index}]",
            {"record": "plain name", "label": "plain name or ''", "tag": "plain name"},
        )
        label = _text(item, "label", f"map[{index}]", required=False)
        parsed.append(
            MapEntry(
                record=_plain(_text(item, "record", f"map[{index}]"), "record"),
                label=_plain(label, "label") if label else "",
                tag=_plain(_text(item, "tag", f"map[{index}]"), "tag"),
            )
        )
    keys = [(e.record, e.label) for e in parsed]
    if len(set(keys)) != len(keys):
        raise BadRequest("the map names one (record, label) twice")
    state = doc.get("state", "open")
    if state not in ("open", "locked"):
        raise BadRequest(f"state {echo(state)} is not known", accepted=["open", "locked"])
    description = doc.get("description")
    if description is not None:
        description = _text(doc, "description", "global tag")
    return GlobalTagUpdate(tuple(parsed), description=description, lock=state == "locked")


def parse_run_record(doc: Any) -> RunRecordPost:
    """The body of `POST /v1/runs/{run}`."""
    fields = {
        "globaltag": "plain name",
        "lumi": f"integer 0..{LUMI_MAX}, default {DEFAULT_LUMI}",
        "digest": "SHA-256 of the conditions, 64 lowercase hex digits",
        "attestation": f"a JSON object of at most {MAX_ATTESTATION} bytes",
    }
    doc = _object(doc, "run record", fields)
    if "globaltag" not in doc:
        raise BadRequest("run record needs a globaltag", accepted=fields)
    globaltag = _plain(_text(doc, "globaltag", "run record"), "global tag name")
    lumi = _integer(doc.get("lumi", DEFAULT_LUMI), "run record.lumi", 0, LUMI_MAX)
    digest = doc.get("digest")
    if not isinstance(digest, str) or len(digest) != 64 or not set(digest) <= _LOWER_HEX:
        raise BadRequest(
            f"run record.digest={echo(digest)} is not a SHA-256 hash in lowercase hex",
            accepted="64 lowercase hex digits",
        )
    attestation = doc.get("attestation")
    if not isinstance(attestation, dict):
        raise BadRequest(
            f"run record.attestation={echo(attestation)} is not a JSON object",
            accepted=fields["attestation"],
        )
    text = orjson.dumps(attestation)
    if len(text) > MAX_ATTESTATION:
        raise BadRequest(
            f"run record.attestation is {len(text)} bytes as JSON",
            accepted=f"<= {MAX_ATTESTATION} bytes",
        )
    return RunRecordPost(globaltag, digest, text.decode(), lumi)


_LOWER_HEX: Final = frozenset("0123456789abcdef")


def check_since(time_type: str, since: int) -> None:
    """A run tag's since is a run number; run_lumi and timestamp use the whole int64 range."""
    if time_type == "run" and since > RUN_MAX:
        raise BadRequest(f"since={since} is not a run number", accepted=f"0..{RUN_MAX}")
