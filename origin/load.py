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

Types are strict (`origin.documents`): `lock` is `true` or `false`, integers are plain decimal,
hashes and names are strings; a key, payload, tag or global tag given twice is an error. An
error names the file, where in it (`tags[1].iovs[0].since`) and what is accepted.

The whole file is parsed and every payload file read first, then everything is written in one
transaction: an import either happens whole or leaves the database untouched. Paths are relative
to the file.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from origin.documents import read_document
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
from outpost.errors import BadRequest, echo

__all__ = ["LoadPlan", "LoadSummary", "load_file", "plan_file"]

T = TypeVar("T")
_SECTIONS = {"payloads": "{name: {file, object_type}}", "tags": "list", "globaltags": "list"}


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


@dataclass(frozen=True)
class LoadPlan:
    """What a file says, checked and with every payload file read: nothing written yet."""

    blobs: dict[str, tuple[bytes, str]]
    tags: tuple[_TagPlan, ...]
    global_tags: tuple[tuple[str, GlobalTagUpdate], ...]


def plan_file(path: Path) -> LoadPlan:
    """Parse and check the whole file and read its payload files; raises `BadRequest`."""
    doc = read_document(path)
    if not isinstance(doc, dict) or set(doc) - set(_SECTIONS):
        raise BadRequest(f"{path}: expected a mapping of payloads, tags and globaltags")
    blobs = _read_payloads(path, _section(path, doc, "payloads", dict))
    plans = tuple(
        _at(path, f"tags[{i}]", partial(_plan_tag, item, blobs))
        for i, item in enumerate(_section(path, doc, "tags", list))
    )
    global_tags = tuple(
        _at(path, f"globaltags[{i}]", partial(_plan_global_tag, item))
        for i, item in enumerate(_section(path, doc, "globaltags", list))
    )
    _unique(path, "tags", [p.tag.name for p in plans])
    _unique(path, "globaltags", [name for name, _ in global_tags])
    return LoadPlan(blobs, plans, global_tags)


def load_file(path: Path, writes: Writes) -> LoadSummary:
    """Import the file in one transaction: all of it or, on any error, nothing."""
    plan = plan_file(path)
    iov_count = 0
    with writes.session() as session:
        for data, kind in plan.blobs.values():
            session.put_payload(data, kind)
        for tag in plan.tags:
            session.create_tag(tag.tag)
            if tag.iovs:
                session.append_iovs(tag.tag.name, tag.iovs)
                iov_count += len(tag.iovs)
            if tag.lock:
                session.lock_tag(tag.tag.name)
        for name, change in plan.global_tags:
            session.put_global_tag(name, change)
    return LoadSummary(len(plan.blobs), len(plan.tags), iov_count, len(plan.global_tags))


def _section(path: Path, doc: dict[str, Any], name: str, kind: type[T]) -> T:
    """A top-level section; left out or empty (`tags:`) is an empty one."""
    value = doc.get(name)
    if value is None:
        return kind()
    if not isinstance(value, kind):
        raise BadRequest(f"{path}: {name} must be a {kind.__name__}", accepted=_SECTIONS[name])
    return value


def _at(path: Path, where: str, parse: Callable[[], T]) -> T:
    """`parse()`, with its error prefixed by the file and the place in it."""
    try:
        return parse()
    except BadRequest as exc:
        raise BadRequest(f"{path}: {where}: {exc.detail}", accepted=exc.accepted) from exc


def _unique(path: Path, section: str, names: list[str]) -> None:
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise BadRequest(f"{path}: {section} lists {twice} more than once", accepted="each once")


def _read_payloads(path: Path, specs: dict[str, Any]) -> dict[str, tuple[bytes, str]]:
    blobs: dict[str, tuple[bytes, str]] = {}
    fields = {"file": "path relative to this file", "object_type": "plain name"}
    for name, spec in specs.items():
        where = f"{path}: payloads.{name}"
        if not isinstance(spec, dict) or set(spec) - set(fields) or "file" not in spec:
            raise BadRequest(f"{where} must be a mapping with a file", accepted=fields)
        file, object_type = spec["file"], spec.get("object_type", "blob")
        if not isinstance(file, str) or not isinstance(object_type, str):
            raise BadRequest(f"{where}: file and object_type must be strings", accepted=fields)
        object_type = _at(path, f"payloads.{name}", partial(parse_object_type, object_type))
        try:
            blobs[name] = ((path.parent / file).read_bytes(), object_type)
        except OSError as exc:
            raise BadRequest(f"{where}: {file}: {exc.strerror}") from exc
    return blobs


def _plan_tag(item: Any, blobs: dict[str, tuple[bytes, str]]) -> _TagPlan:
    if not isinstance(item, dict):
        raise BadRequest("a tag must be a mapping")
    meta = {k: v for k, v in item.items() if k not in ("iovs", "lock")}
    tag = parse_new_tag(meta)
    lock = item.get("lock", False)
    if not isinstance(lock, bool):
        raise BadRequest(f"lock={echo(lock)} is not a boolean", accepted=[True, False])
    raw_iovs = item.get("iovs")
    if raw_iovs is None or raw_iovs == []:
        return _TagPlan(tag, (), lock)
    if not isinstance(raw_iovs, list):
        raise BadRequest("iovs must be a list", accepted="[{since, payload, channel}]")
    # A payload name stands for the SHA-256 of its file, the hash it is stored under.
    digests = {name: hashlib.sha256(data).hexdigest() for name, (data, _) in blobs.items()}
    substituted = [
        {**iov, "payload": digests.get(iov["payload"], iov["payload"])}
        if isinstance(iov, dict) and isinstance(iov.get("payload"), str)
        else iov
        for iov in raw_iovs
    ]
    iovs = parse_iovs({"iovs": substituted})
    return _TagPlan(tag, iovs, lock)


def _plan_global_tag(item: Any) -> tuple[str, GlobalTagUpdate]:
    if not isinstance(item, dict) or not isinstance(item.get("name"), str):
        raise BadRequest("a global tag must be a mapping with a name", accepted="{name, map}")
    body = {k: v for k, v in item.items() if k != "name"}
    return item["name"], parse_global_tag(body)
