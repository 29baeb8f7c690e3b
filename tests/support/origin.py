"""Helpers for origin tests: tokens, a hand-moved clock, auth headers."""

from __future__ import annotations

from collections.abc import Callable

from support.asgi import AppClient

__all__ = ["ADMIN_TOKEN", "TOKENS", "WRITER_TOKEN", "FakeClock", "MakeClient", "admin", "writer"]

WRITER_TOKEN = "ecal-writer-token"
ADMIN_TOKEN = "admin-token"
TOKENS = f"""
[[token]]
name = "ecal-calibration"
role = "writer"
tags = ["Ecal*"]
token = "{WRITER_TOKEN}"

[[token]]
name = "run-coordinator"
role = "admin"
token = "{ADMIN_TOKEN}"
"""

MakeClient = Callable[..., AppClient]


class FakeClock:
    """Microseconds since the epoch, moved by hand."""

    def __init__(self, now: int = 1_800_000_000_000_000) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += int(seconds * 1_000_000)


def writer(token: str = WRITER_TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def admin() -> dict[str, str]:
    return writer(ADMIN_TOKEN)
