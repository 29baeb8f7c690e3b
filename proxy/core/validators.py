"""Conditional requests from clients, answered from a stored entry (RFC 9110 §13.1 to 13.2)."""

from __future__ import annotations

from proxy.core.entry import Entry, parse_http_date

__all__ = ["not_modified"]


def _opaque(tag: bytes) -> bytes:
    tag = tag.strip()
    return tag[2:] if tag.startswith(b"W/") else tag


def not_modified(
    entry: Entry, if_none_match: bytes | None, if_modified_since: bytes | None
) -> bool:
    """Whether a GET/HEAD with these conditions gets 304 from `entry` (weak comparison)."""
    if entry.status != 200:
        return False
    if if_none_match is not None:
        if if_none_match.strip() == b"*":
            return True
        if entry.etag is None:
            return False
        ours = _opaque(entry.etag)
        return any(_opaque(tag) == ours for tag in if_none_match.split(b",") if tag.strip())
    if if_modified_since is not None and entry.last_modified is not None:
        since = parse_http_date(if_modified_since)
        modified = parse_http_date(entry.last_modified)
        return since is not None and modified is not None and modified <= since
    return False
