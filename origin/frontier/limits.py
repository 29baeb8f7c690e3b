"""What one anonymous Frontier request may cost, as pure functions (no I/O).

Anyone can send Frontier SQL, so every request is bounded before and while it runs: the SQL text
of all its payloads before any of it is parsed (parsing is the CPU cost), one deadline for the
whole request (planning and every payload), and the row cap inside the database (`LIMIT cap + 1`)
so an oversized answer is never fetched to be counted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from origin.frontier.params import FrontierError

__all__ = ["CAPPED_ALIAS", "Deadline", "capped_sql", "check_sql_budget"]

CAPPED_ALIAS = "outpost_capped"


def check_sql_budget(texts: Sequence[str], max_bytes: int) -> None:
    """FrontierError if the request's SQL (all payloads, UTF-8) is longer than `max_bytes`."""
    total = sum(len(text.encode()) for text in texts)
    if total > max_bytes:
        raise FrontierError(
            f"the request's SQL is {total} bytes; at most {max_bytes} bytes are accepted"
        )


def capped_sql(sql: str, max_rows: int) -> str:
    """`sql` (one checked SELECT, as the guard generated it) returning at most `max_rows + 1` rows.

    The extra row tells "more than the cap" from "exactly the cap" without fetching the rest;
    with an ORDER BY the database keeps only the top rows (a bounded sort).
    """
    return f"SELECT * FROM ({sql}) AS {CAPPED_ALIAS} LIMIT {int(max_rows) + 1}"  # noqa: S608


@dataclass(frozen=True)
class Deadline:
    """One deadline for a whole request: monotonic `at` seconds, `seconds` its full length."""

    at: float
    seconds: float

    @classmethod
    def after(cls, seconds: float, now: float) -> Deadline:
        return cls(now + seconds, seconds)

    def remaining_ms(self, now: float) -> int:
        """Milliseconds left (at least 1: PostgreSQL reads a timeout of 0 as none)."""
        return max(1, int((self.at - now) * 1000))

    def passed(self, now: float) -> bool:
        return now >= self.at

    def message(self) -> str:
        """The payload error of a request past its deadline (PostgreSQL's words, the servlet's)."""
        return f"canceling statement due to statement timeout ({self.seconds:g} s)"
