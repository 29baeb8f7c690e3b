"""The errors every Outpost program answers with, each mapped to one HTTP status.

    OutpostError                 500  (never raised on purpose: a bug)
    ├── BadRequest               400  malformed value, unknown parameter, bad identifier
    ├── Unauthorized             401  no bearer token where one is needed
    ├── Forbidden                403  a token that may not do this
    ├── NotFound                 404  unknown route, global tag, tag, payload or table
    ├── MethodNotAllowed         405
    ├── RequestTimeout           408  a request head not complete within the header timeout
    ├── Conflict                 409  write to a locked tag, an existing name with other metadata
    ├── PayloadTooLarge          413  body over the configured limit
    ├── URITooLong               414  URL over 8 KiB
    ├── UnprocessableContent     422  a well-formed body whose content cannot be applied
    ├── HeaderFieldsTooLarge     431  request head over the header byte or count limit
    ├── BadGateway               502  every upstream failed (the proxy names each attempt)
    ├── ServiceUnavailable       503  the database (or another dependency) is down
    └── GatewayTimeout           504  an upstream did not answer in time

Every error renders as the JSON body `{"error", "detail", "accepted"}`: what went wrong, the
specifics, and what would have been accepted instead (or null).

Details echo what a client sent, so every body is bounded here, whoever raised the error: a
detail to `DETAIL_LIMIT` characters, each string in `accepted` to `ECHO_LIMIT`, each list or
mapping in it to `ITEMS_LIMIT` entries (an ellipsis marks the cut). `echo(value)` is the bounded
repr to put client input into a detail with.
"""

from __future__ import annotations

import reprlib
from typing import Any, ClassVar, Final

import orjson

__all__ = [
    "BadGateway",
    "BadRequest",
    "Conflict",
    "Forbidden",
    "GatewayTimeout",
    "HeaderFieldsTooLarge",
    "MethodNotAllowed",
    "NotFound",
    "OutpostError",
    "PayloadTooLarge",
    "RequestTimeout",
    "ServiceUnavailable",
    "URITooLong",
    "Unauthorized",
    "UnprocessableContent",
    "clip",
    "echo",
]

ECHO_LIMIT: Final = 200
DETAIL_LIMIT: Final = 1000  # room for a sentence around a few echoes
ITEMS_LIMIT: Final = 100
ELLIPSIS: Final = "…"

_echo = reprlib.Repr()
_echo.maxstring = _echo.maxother = _echo.maxlong = ECHO_LIMIT
_echo.maxlist = _echo.maxtuple = _echo.maxdict = _echo.maxset = 10
_echo.maxlevel = 3


def echo(value: Any) -> str:
    """A repr of client input short enough for an error detail, however large the input."""
    return clip(_echo.repr(value))


def clip(text: str, limit: int = ECHO_LIMIT) -> str:
    """`text` cut to `limit` characters, the cut marked with an ellipsis."""
    return text if len(text) <= limit else text[: limit - 1] + ELLIPSIS


def _bounded(value: Any, depth: int = 0) -> Any:
    """`accepted` with every string clipped and every container cut to a few entries."""
    if isinstance(value, str):
        return clip(value)
    if depth > 3:
        return ELLIPSIS
    if isinstance(value, dict):
        items = list(value.items())
        cut = {clip(str(k)): _bounded(v, depth + 1) for k, v in items[:ITEMS_LIMIT]}
        return cut | ({ELLIPSIS: ELLIPSIS} if len(items) > ITEMS_LIMIT else {})
    if isinstance(value, list | tuple | set | frozenset):
        items = list(value)
        cut_list = [_bounded(v, depth + 1) for v in items[:ITEMS_LIMIT]]
        return cut_list + ([ELLIPSIS] if len(items) > ITEMS_LIMIT else [])
    return value


class OutpostError(Exception):
    """Base of the tree; `status` is the HTTP status the error maps to."""

    status: ClassVar[int] = 500
    error: ClassVar[str] = "internal error"

    def __init__(self, detail: str, *, accepted: Any = None, headers: dict[str, str] | None = None):
        detail = clip(detail, DETAIL_LIMIT)
        super().__init__(detail)
        self.detail = detail
        self.accepted = _bounded(accepted)
        self.headers = headers or {}

    def body(self) -> bytes:
        """The JSON body sent to the client."""
        return orjson.dumps({"error": self.error, "detail": self.detail, "accepted": self.accepted})


class BadRequest(OutpostError):
    status = 400
    error = "bad request"


class Unauthorized(OutpostError):
    status = 401
    error = "unauthorized"


class Forbidden(OutpostError):
    status = 403
    error = "forbidden"


class NotFound(OutpostError):
    status = 404
    error = "not found"


class MethodNotAllowed(OutpostError):
    status = 405
    error = "method not allowed"


class Conflict(OutpostError):
    status = 409
    error = "conflict"


class RequestTimeout(OutpostError):
    status = 408
    error = "request timeout"


class PayloadTooLarge(OutpostError):
    status = 413
    error = "payload too large"


class URITooLong(OutpostError):
    status = 414
    error = "uri too long"


class UnprocessableContent(OutpostError):
    status = 422
    error = "unprocessable content"


class HeaderFieldsTooLarge(OutpostError):
    status = 431
    error = "request header fields too large"


class BadGateway(OutpostError):
    status = 502
    error = "bad gateway"


class ServiceUnavailable(OutpostError):
    status = 503
    error = "service unavailable"


class GatewayTimeout(OutpostError):
    status = 504
    error = "gateway timeout"
