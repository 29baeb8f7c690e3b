"""Content-coding negotiation shared by the origin and the proxy (RFC 9110 §12.5.3)."""

from __future__ import annotations

__all__ = ["accepts_gzip"]


def accepts_gzip(accept_encoding: str | None) -> bool:
    """True when `gzip` (or `*`) is acceptable with a non-zero quality."""
    if not accept_encoding:
        return False
    qualities: dict[str, float] = {}
    for item in accept_encoding.split(","):
        coding, _, params = item.strip().partition(";")
        quality = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        qualities[coding.strip().lower()] = quality
    if "gzip" in qualities:
        return qualities["gzip"] > 0
    return qualities.get("x-gzip", qualities.get("*", 0.0)) > 0
