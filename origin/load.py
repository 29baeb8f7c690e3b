"""`outpost db load FILE`: import tags, IOVs, payload files and global tags from JSON or YAML.

    payloads:                          # files to upload, by a name used below
      ped_2026a: {file: blobs/ped_2026a.bin, object_type: EcalPedestals}
    tags:
      - name: EcalPedestals_v1_hlt
        time_type: run                 # run | run_lumi | timestamp
        payload_type: EcalPedestals
        description: pedestals for the HLT
        iovs:
          - {since: 1, payload: ped_2026a}     # a name from `payloads`, or a sha256
        lock: false
    globaltags:
      - name: MY_GT
        description: my global tag
        state: open                    # open | locked
        map:
          - {record: EcalPedestalsRcd, label: "", tag: EcalPedestals_v1_hlt}

The whole file is parsed and every payload file read first, then everything is written in one
transaction: an import either happens whole or leaves the database untouched. Paths are relative
to the file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import yaml

from origin.inputs import (
    GlobalTagUpdate,
    NewIov,
    NewTag,
    parse_global_tag,
    parse_iovs,
    parse_new_tag,
    parse_object_type,
)
from origin.writes import Writes
from outpost.errors import BadRequest

__all__ = ["LoadSummary", "load_file"]


@dataclass(frozen=True)
class LoadSummary:
    payloads: int
    tags: int
    iovs: int
    global_tags: int


@dataclass(frozen=True)
class _TagPlan:
    tag: NewTag
    iovs: tuple[NewIov, ...]
    lock: bool


def _read(path: Path) -> Any:
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise BadRequest(f"cannot read {path}: {exc.strerror}") from exc
    try:
        if path.suffix.lower() == ".json":
            return orjson.loads(text)
        return yaml.safe_load(text)
    except (orjson.JSONDecodeError, yaml.YAMLError) as exc:
        raise BadRequest(f"{path}: not valid {path.suffix or 'YAML'}: {exc}") from exc


def load_file(path: Path, writes: Writes) -> LoadSummary:
    doc = _read(path)
    if not isinstance(doc, dict) or set(doc) - {"payloads", "tags", "globaltags"}:
        raise BadRequest(f"{path}: expected a mapping of payloads, tags and globaltags")
    blobs: dict[str, tuple[bytes, str]] = {}
    specs = doc.get("payloads") or {}
    if not isinstance(specs, dict):
        raise BadRequest(f"{path}: payloads must map names to {{file, object_type}}")
    for name, spec in specs.items():
        if not isinstance(spec, dict) or "file" not in spec:
            raise BadRequest(f"{path}: payload {name!r} needs a file")
        object_type = parse_object_type(str(spec.get("object_type", "blob")))
        try:
            blobs[str(name)] = ((path.parent / str(spec["file"])).read_bytes(), object_type)
        except OSError as exc:
            raise BadRequest(f"{path}: payload {name!r}: {exc.strerror}") from exc
    tag_items = doc.get("tags") or []
    if not isinstance(tag_items, list):
        raise BadRequest(f"{path}: tags must be a list")
    plans = [_plan_tag(path, item, blobs) for item in tag_items]
    global_tags: list[tuple[str, GlobalTagUpdate]] = []
    gt_items = doc.get("globaltags") or []
    if not isinstance(gt_items, list):
        raise BadRequest(f"{path}: globaltags must be a list")
    for item in gt_items:
        if not isinstance(item, dict) or "name" not in item:
            raise BadRequest(f"{path}: every global tag needs a name")
        body = {k: v for k, v in item.items() if k != "name"}
        global_tags.append((str(item["name"]), parse_global_tag(body)))

    iov_count = 0
    with writes.session() as session:
        hashes = {name: session.put_payload(data, kind)[0] for name, (data, kind) in blobs.items()}
        for plan in plans:
            session.create_tag(plan.tag)
            resolved = tuple(
                NewIov(i.since, hashes.get(i.payload, i.payload), i.channel) for i in plan.iovs
            )
            if resolved:
                session.append_iovs(plan.tag.name, resolved)
                iov_count += len(resolved)
            if plan.lock:
                session.lock_tag(plan.tag.name)
        for name, change in global_tags:
            session.put_global_tag(name, change)
    return LoadSummary(len(blobs), len(plans), iov_count, len(global_tags))


def _plan_tag(path: Path, item: Any, blobs: dict[str, tuple[bytes, str]]) -> _TagPlan:
    if not isinstance(item, dict):
        raise BadRequest(f"{path}: every tag must be a mapping")
    meta = {k: v for k, v in item.items() if k not in ("iovs", "lock")}
    tag = parse_new_tag(meta)
    raw_iovs = item.get("iovs") or []
    iovs: tuple[NewIov, ...] = ()
    if raw_iovs:
        # Payload names stand in for hashes until the files are uploaded.
        placeholders = {name: f"{index:064x}" for index, name in enumerate(blobs)}
        substituted = [
            {**iov, "payload": placeholders.get(str(iov.get("payload")), iov.get("payload"))}
            if isinstance(iov, dict)
            else iov
            for iov in raw_iovs
        ]
        parsed = parse_iovs({"iovs": substituted})
        names = {v: k for k, v in placeholders.items()}
        iovs = tuple(NewIov(i.since, names.get(i.payload, i.payload), i.channel) for i in parsed)
    return _TagPlan(tag, iovs, bool(item.get("lock", False)))
