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
"""

from __future__ import annotations

from typing import Any, ClassVar

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
]


class OutpostError(Exception):
    """Base of the tree; `status` is the HTTP status the error maps to."""

    status: ClassVar[int] = 500
    error: ClassVar[str] = "internal error"

    def __init__(self, detail: str, *, accepted: Any = None, headers: dict[str, str] | None = None):
        super().__init__(detail)
        self.detail = detail
        self.accepted = accepted
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
