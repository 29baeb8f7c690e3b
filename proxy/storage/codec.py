"""Entries as bytes for a shared store: a short JSON header (orjson), then the body as is."""

from __future__ import annotations

import struct
from dataclasses import replace
from typing import Any

import orjson

from proxy.core.entry import make_entry
from proxy.storage.base import Stored, VaryMarker

__all__ = ["decode", "encode"]

MAGIC = b"OP1"
_LENGTH = struct.Struct(">I")


def encode(value: Stored) -> bytes:
    meta: dict[str, Any]
    if isinstance(value, VaryMarker):
        meta = {"vary": [v.decode("latin-1") for v in value.vary]}
        body = b""
    else:
        meta = {
            "status": value.status,
            "headers": [[k.decode("latin-1"), v.decode("latin-1")] for k, v in value.headers],
            "request_time": value.request_time,
            "response_time": value.response_time,
            "epoch": value.epoch,
            "initial_age": value.initial_age,
        }
        body = value.body
    header = orjson.dumps(meta)
    return MAGIC + _LENGTH.pack(len(header)) + header + body


def decode(data: bytes) -> Stored | None:
    """The stored value, or None for bytes this version cannot read."""
    if not data.startswith(MAGIC) or len(data) < 7:
        return None
    (length,) = _LENGTH.unpack_from(data, 3)
    try:
        meta = orjson.loads(data[7 : 7 + length])
    except orjson.JSONDecodeError:
        return None
    if "vary" in meta:
        return VaryMarker(tuple(v.encode("latin-1") for v in meta["vary"]))
    headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in meta["headers"]]
    entry = make_entry(
        meta["status"],
        headers,
        data[7 + length :],
        meta["request_time"],
        meta["response_time"],
        meta["epoch"],
    )
    return replace(entry, initial_age=meta["initial_age"])
