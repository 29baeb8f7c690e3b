"""What the farm-node client raises: one tree, and every error says what was tried and why.

    ClientError                  base of everything the client raises on purpose
    ├── ConfigError              no endpoint, an entry that is no http(s) URL, a bad setting
    │                            (also a ValueError)
    ├── RequestRejected          a 4xx: the request itself is wrong, no other endpoint is asked;
    │   │                        `status` and the server's body {"error","detail","accepted"}
    │   ├── BadRequest           400, also raised before sending for a query no origin accepts
    │   └── NotFound             404: unknown global tag or payload
    ├── AllEndpointsFailed       every endpoint failed (connect error, timeout, 5xx, unusable
    │   │                        answer); `attempts` names each endpoint and why, in order
    │   └── IntegrityError       ... and at least one served bytes that do not hash to the
    │                            payload's SHA-256
    └── ConditionsMismatch       the conditions received are not the run record's: `differences`
                                 names each record that differs

These are the client's own classes: `outpost.errors` is what servers answer with, this is what a
farm node sees. Pure: standard library only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "AllEndpointsFailed",
    "Attempt",
    "BadRequest",
    "ClientError",
    "ConditionsMismatch",
    "ConfigError",
    "FailureKind",
    "IntegrityError",
    "NotFound",
    "RequestRejected",
]

FailureKind = Literal["connect", "timeout", "transport", "status", "invalid", "integrity"]


@dataclass(frozen=True, slots=True)
class Attempt:
    """One failed GET: which endpoint, what kind of failure, the specifics."""

    endpoint: str
    kind: FailureKind
    detail: str

    def __str__(self) -> str:
        return f"{self.endpoint}: {self.detail}"


class ClientError(Exception):
    """Base of the tree."""


class ConfigError(ClientError, ValueError):
    """A configuration the client cannot work with; the message names the key."""


class RequestRejected(ClientError):
    """A 4xx answer. `endpoint` is None when the client refused the request before sending it."""

    def __init__(
        self,
        path: str,
        status: int,
        body: dict[str, Any] | None,
        *,
        endpoint: str | None,
        attempts: tuple[Attempt, ...] = (),
    ) -> None:
        self.path = path
        self.status = status
        self.body = body
        self.endpoint = endpoint
        self.attempts = attempts
        where = f"{endpoint} answered {status}" if endpoint else f"{status}, not sent"
        super().__init__(f"GET {path}: {where}: {self.detail or self.error or 'no detail'}")

    @property
    def error(self) -> str | None:
        value = (self.body or {}).get("error")
        return value if isinstance(value, str) else None

    @property
    def detail(self) -> str | None:
        value = (self.body or {}).get("detail")
        return value if isinstance(value, str) else None

    @property
    def accepted(self) -> Any:
        return (self.body or {}).get("accepted")


class BadRequest(RequestRejected):
    """400: a malformed query."""


class NotFound(RequestRejected):
    """404: no such global tag, tag or payload."""


class AllEndpointsFailed(ClientError):
    """Every endpoint failed, every round; `attempts` lists each failed GET in order."""

    def __init__(self, path: str, attempts: tuple[Attempt, ...]) -> None:
        self.path = path
        self.attempts = attempts
        tried = "; ".join(str(a) for a in attempts) or "no endpoint configured"
        super().__init__(f"GET {path}: every endpoint failed ({tried})")

    @property
    def endpoints(self) -> tuple[str, ...]:
        """Each endpoint tried, once, in the order first tried."""
        return tuple(dict.fromkeys(a.endpoint for a in self.attempts))


class IntegrityError(AllEndpointsFailed):
    """Every endpoint failed and at least one served payload bytes with the wrong hash."""


class ConditionsMismatch(ClientError):
    """A run's conditions as received differ from its run record (`fetch_run(expect=...)`):
    this node would not configure the run with the bytes run control attested."""

    def __init__(self, message: str, differences: tuple[str, ...] = ()) -> None:
        shown = "; ".join(differences[:10]) + ("; …" if len(differences) > 10 else "")
        super().__init__(f"{message}: {shown}" if shown else message)
        self.differences = differences
