"""`outpost.redact`: no credential survives redaction, whatever the URL or text holds."""

from __future__ import annotations

import logging

from hypothesis import given
from hypothesis import strategies as st

from outpost.redact import MASK, SecretScrubber, redact_text, redact_url

# Secrets with a marker no host, path or scheme contains, so "absent" is a sharp test.
SECRET = st.text(
    alphabet=st.characters(codec="ascii", categories=["L", "N"]) | st.sampled_from("-_.~!$*"),
    min_size=1,
    max_size=24,
).map(lambda s: f"Zq9{s}")
USER = st.text(alphabet="abcdefghijklmnop", min_size=0, max_size=8)
HOST = st.sampled_from(["127.0.0.1", "redis.site", "origin.cern.ch", "[::1]"])
SCHEME = st.sampled_from(["http", "https", "redis", "rediss", "postgresql+psycopg"])
PARAM = st.sampled_from(["token", "access_token", "apikey", "password", "sig", "X-Auth-Key"])


@given(SCHEME, USER, SECRET, HOST, st.integers(1, 65535))
def test_a_password_in_userinfo_never_survives(
    scheme: str, user: str, secret: str, host: str, port: int
) -> None:
    url = f"{scheme}://{user}:{secret}@{host}:{port}/0"
    shown = redact_url(url)
    assert secret not in shown
    assert shown == f"{scheme}://{user}:{MASK}@{host}:{port}/0"
    assert secret not in redact_text(f"connect to {url} failed: refused")


@given(HOST, PARAM, SECRET, st.text(alphabet="abc", max_size=5))
def test_a_secret_query_parameter_never_survives(
    host: str, param: str, secret: str, other: str
) -> None:
    url = f"http://{host}/v1/x?a={other}&{param}={secret}"
    assert secret not in redact_url(url)
    assert f"a={other}" in redact_url(url)
    assert secret not in redact_text(f"GET {url} -> 502")


def test_a_url_without_credentials_is_unchanged() -> None:
    for url in ("http://origin:8080", "http://127.0.0.1:1/v1/resolve/GT?run=5", "redis://r:6379/0"):
        assert redact_url(url) == url
        assert redact_text(f"upstream {url} down") == f"upstream {url} down"


def test_a_lone_userinfo_is_taken_for_a_password() -> None:
    assert redact_url("redis://hunter22@r:6379") == f"redis://{MASK}@r:6379"


@given(SECRET)
def test_the_scrubber_masks_configured_secrets_in_messages_and_tracebacks(secret: str) -> None:
    secret = secret + "-long"
    SecretScrubber.install([secret])
    record = logging.getLogger("test.redact").makeRecord(
        "test.redact", logging.ERROR, __file__, 1, "token was %s", (secret,), None
    )
    assert secret not in record.getMessage()
    try:
        raise RuntimeError(f"failed with {secret}")
    except RuntimeError as exc:
        failed = logging.getLogRecordFactory()(
            "t", logging.ERROR, __file__, 1, "oops", (), (type(exc), exc, exc.__traceback__)
        )
    assert failed.exc_text is not None and secret not in failed.exc_text
    assert "failed with" in failed.exc_text
