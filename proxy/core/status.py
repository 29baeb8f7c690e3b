"""The Cache-Status header field (RFC 9211): every cache on the path appends its entry, so a
response tells which tier served it and why.

    outpost-node-12; hit; ttl=42
    outpost-site; fwd=miss; fwd-status=200; stored
    outpost-node-12; fwd=stale; fwd-status=304; detail=epoch
    outpost-site; fwd=stale; detail=stale-if-error
"""

from __future__ import annotations

__all__ = ["cache_status", "chain"]


def cache_status(
    name: str,
    *,
    hit: bool = False,
    fwd: str | None = None,
    fwd_status: int | None = None,
    ttl: int | None = None,
    stored: bool = False,
    collapsed: bool = False,
    detail: str | None = None,
) -> bytes:
    parts = [name]
    if hit:
        parts.append("hit")
    if fwd:
        parts.append(f"fwd={fwd}")
    if fwd_status is not None:
        parts.append(f"fwd-status={fwd_status}")
    if ttl is not None:
        parts.append(f"ttl={ttl}")
    if stored:
        parts.append("stored")
    if collapsed:
        parts.append("collapsed")
    if detail:
        parts.append(f"detail={detail}")
    return "; ".join(parts).encode()


def chain(upstream: bytes | None, ours: bytes) -> bytes:
    """Ours goes last: RFC 9211 lists the cache nearest the origin first."""
    return upstream + b", " + ours if upstream else ours
