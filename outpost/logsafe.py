"""Log lines that a request cannot forge: control characters in a message are escaped.

A URL, a header value or an upstream's error text can end up in a log message; with a CR or LF
in it, one request could write a second, made-up line into an operator's log (log forging). The
record factory installed here escapes every control character but tab in the message as `\\xNN`,
so each record stays one line, whatever handler or format prints it (uvicorn's included).
Tracebacks are added by the formatter after the message and keep their lines.
"""

from __future__ import annotations

import logging
import re

__all__ = ["SafeLogRecord", "escape_controls", "install"]

_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def escape_controls(text: str) -> str:
    """`text` with control characters (but tab) written as `\\xNN`."""
    if _CONTROL.search(text) is None:
        return text
    return _CONTROL.sub(lambda found: f"\\x{ord(found.group()):02x}", text)


class SafeLogRecord(logging.LogRecord):
    def getMessage(self) -> str:
        return escape_controls(super().getMessage())


def install() -> None:
    """Make every log record of this process a SafeLogRecord. Called first thing by each
    program (and each worker's app factory); a factory installed after it, such as the
    proxy's `outpost.redact.SecretScrubber`, wraps it, and one installed before is kept."""
    if logging.getLogRecordFactory() is logging.LogRecord:
        logging.setLogRecordFactory(SafeLogRecord)
