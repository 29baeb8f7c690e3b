"""Log lines cannot be forged: control characters in a message come out escaped."""

from __future__ import annotations

import io
import logging

from hypothesis import given
from hypothesis import strategies as st

from outpost import logsafe


def test_crlf_from_a_url_stays_on_one_line() -> None:
    previous = logging.getLogRecordFactory()
    logging.setLogRecordFactory(logging.LogRecord)
    logsafe.install()
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    log = logging.getLogger("test.logsafe")
    log.addHandler(handler)
    try:
        log.warning("refused %s", "/v1/globaltags\r\nX-Injected: yes")
    finally:
        log.removeHandler(handler)
        logging.setLogRecordFactory(previous)
    assert stream.getvalue() == "refused /v1/globaltags\\x0d\\x0aX-Injected: yes\n"


def test_a_factory_installed_before_is_kept() -> None:
    previous = logging.getLogRecordFactory()

    def other(*args: object, **kwargs: object) -> logging.LogRecord:
        return logging.LogRecord(*args, **kwargs)  # type: ignore[arg-type]

    logging.setLogRecordFactory(other)
    try:
        logsafe.install()
        assert logging.getLogRecordFactory() is other
    finally:
        logging.setLogRecordFactory(previous)


@given(st.text(max_size=50))
def test_an_escaped_message_has_no_control_character_but_tab(text: str) -> None:
    escaped = logsafe.escape_controls(text)
    assert not any((ord(c) < 0x20 and c != "\t") or c == "\x7f" for c in escaped)
    if escaped == text:
        assert "\n" not in text and "\r" not in text
