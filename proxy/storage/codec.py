"""Entries as bytes for a shared store: a short JSON header (orjson), then the body as is.

In the shared store the bytes are sealed: an HMAC-SHA256 over the store key and the encoded
bytes, under the site's `shared_tier_key`, goes in front. Whoever can write to Redis without
that key (a leaked Redis password) cannot make a proxy serve what it wrote: `unseal` refuses
bytes whose MAC does not match the key they were read under, and the proxy treats them as a miss.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from dataclasses import replace
from typing import Any

import orjson

from proxy.core.entry import make_entry
from proxy.storage.base import Stored, VaryMarker

__all__ = ["decode", "encode", "seal", "unseal"]

MAGIC = b"OP1"
SEALED = b"OS1"
_MAC_SIZE = hashlib.sha256().digest_size
_LENGTH = struct.Struct(">I")


def encode(value: Stored) -> bytes:
    meta: dict[str, Any]
    if isinstance(value, VaryMarker):
        meta = {"vary": [v.decode("latin-1") for v in value.vary]}
        if value.invalidated:
            meta["invalidated"] = value.invalidated
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
    """The stored value, or None for bytes this version cannot read (another version's, cut
    short, altered): the proxy takes them for a miss, never for an error."""
    if not data.startswith(MAGIC) or len(data) < 7:
        return None
    (length,) = _LENGTH.unpack_from(data, 3)
    if 7 + length > len(data):
        return None
    try:
        return _value(orjson.loads(data[7 : 7 + length]), data[7 + length :])
    except (orjson.JSONDecodeError, TypeError, ValueError):  # UnicodeError is a ValueError
        return None


def _value(meta: object, body: bytes) -> Stored:
    """What `encode` wrote, checked field by field (TypeError or ValueError if it is not)."""
    if not isinstance(meta, dict):
        raise TypeError("not an object")
    if "vary" in meta:
        vary = tuple(v.encode("latin-1") for v in _strings(meta["vary"]))
        return VaryMarker(vary, _int(meta.get("invalidated", 0)))
    fields = meta.get("headers")
    if not isinstance(fields, list) or not all(len(_strings(f)) == 2 for f in fields):
        raise TypeError("headers")
    headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in fields]
    status = _int(meta.get("status"))
    if not 100 <= status <= 599:
        raise ValueError("status")
    entry = make_entry(
        status,
        headers,
        body,
        _int(meta.get("request_time")),
        _int(meta.get("response_time")),
        _int(meta.get("epoch")),
    )
    return replace(entry, initial_age=_int(meta.get("initial_age")))


def _int(value: object) -> int:
    if type(value) is not int:
        raise TypeError("not an integer")
    return value


def _strings(value: object) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise TypeError("not a list of strings")
    return value


def _mac(secret: bytes, key: str, data: bytes) -> bytes:
    name = key.encode()
    return hmac.digest(secret, _LENGTH.pack(len(name)) + name + data, "sha256")


def seal(secret: bytes, key: str, data: bytes) -> bytes:
    """`data` with a MAC binding it to the store key `key` under `secret`."""
    return SEALED + _mac(secret, key, data) + data


def unseal(secret: bytes, key: str, sealed: bytes) -> bytes | None:
    """The bytes `seal` was given, or None when they are unsigned, altered, under another key
    or sealed with another secret."""
    start = len(SEALED) + _MAC_SIZE
    if not sealed.startswith(SEALED) or len(sealed) < start:
        return None
    data = sealed[start:]
    return (
        data if hmac.compare_digest(sealed[len(SEALED) : start], _mac(secret, key, data)) else None
    )
