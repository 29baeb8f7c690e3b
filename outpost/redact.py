"""Credentials out of everything the programs show: answers, log lines, metric labels, errors.

Operators put secrets into URLs (`redis://:pass@host`, `http://user:pass@upstream`,
`?token=…`); every URL or message text that leaves a process goes through `redact_url` or
`redact_text` first, and `SecretScrubber` removes the configured secrets themselves from every
log record, whatever code wrote it (httpx, redis-py, uvicorn tracebacks).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

__all__ = ["MASK", "SecretScrubber", "redact_text", "redact_url"]

MASK = "***"
# Query parameters whose value is a credential.
_SECRET_PARAMS = re.compile(
    r"(token|secret|passw(or)?d|pwd|auth|api[-_]?key|access[-_]?key|signature|sig|credential|key)",
    re.IGNORECASE,
)
# scheme://user:password@ anywhere in a text (an exception message, a log line).
_USERINFO = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://[^/\s:@]*):[^@\s/]*@")
# name=value pairs of secret-looking names inside a query string in a text.
_PARAM_IN_TEXT = re.compile(
    r"([?&;](?:[A-Za-z0-9_.-]*?)(?:token|secret|passw(?:or)?d|pwd|auth|api[-_]?key|access[-_]?key"
    r"|signature|sig|credential|key)[A-Za-z0-9_.-]*=)[^&\s#'\"]*",
    re.IGNORECASE,
)


def redact_url(url: str) -> str:
    """`url` with the userinfo password and secret-looking query values replaced by `***`."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return redact_text(url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, host = netloc.rpartition("@")
        user, colon, _password = userinfo.partition(":")
        netloc = f"{user}:{MASK}@{host}" if colon else f"{userinfo}@{host}"
        if not colon and user:  # `redis://secret@host`: a lone userinfo is a password too
            netloc = f"{MASK}@{host}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(_SECRET_PARAMS.search(name) for name, _ in pairs):
            query = urlencode(
                [(n, MASK if _SECRET_PARAMS.search(n) else v) for n, v in pairs], safe="*"
            )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def redact_text(text: str) -> str:
    """Free text (an error message) with every URL's password and secret parameters masked."""
    return _PARAM_IN_TEXT.sub(rf"\1{MASK}", _USERINFO.sub(rf"\1:{MASK}@", text))


class SecretScrubber:
    """A log record factory that masks the configured secrets in every record's text.

    Installed once per process (`install`); the message is formatted at creation, so neither
    its arguments nor a traceback (formatted here too) can carry a secret to any handler.
    """

    _installed: SecretScrubber | None = None

    def __init__(self) -> None:
        self.secrets: set[str] = set()
        self._factory = logging.getLogRecordFactory()

    @classmethod
    def install(cls, secrets: Iterable[str | None]) -> SecretScrubber:
        """Add `secrets` (empty and very short ones are skipped) to the process's scrubber."""
        if cls._installed is None:
            cls._installed = cls()
            logging.setLogRecordFactory(cls._installed._record)
        cls._installed.secrets.update(s for s in secrets if s and len(s) >= 4)
        return cls._installed

    def scrub(self, text: str) -> str:
        for secret in sorted(self.secrets, key=len, reverse=True):
            text = text.replace(secret, MASK)
        return redact_text(text)

    def _record(self, *args: Any, **kwargs: Any) -> logging.LogRecord:
        record = self._factory(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: leave it to logging's own error path
            return record
        record.msg, record.args = self.scrub(message), ()
        if record.exc_info and record.exc_info[0] is not None:
            text = logging.Formatter().formatException(record.exc_info)
            record.exc_text, record.exc_info = self.scrub(text), None
        return record
