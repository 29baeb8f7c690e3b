"""SIGHUP reloads a running server instead of ending it (`outpost.hangup`): the origin re-reads
its tokens file and keeps the old tokens when the new file is broken; a proxy keeps its cache
and its open connections. Real `outpost` processes, real signals."""

from __future__ import annotations

import hashlib
import os
import signal
import time
from pathlib import Path

import httpx
from support.rawhttp import Connection
from support.stack import Server, Stack

from origin.sample import HLT_GLOBAL_TAG

RESOLVE = f"/v1/resolve/{HLT_GLOBAL_TAG}?run=500"


def tokens_text(token: str) -> str:
    return f'[[token]]\nname = "ops"\nrole = "admin"\ntoken = "{token}"\n'


def replace_file(path: Path, text: str) -> None:
    """Write `text` as an operator should: a new file renamed over the old one."""
    fresh = path.with_suffix(".new")
    fresh.write_text(text)
    os.replace(fresh, path)


def upload(origin: Server, token: str) -> int:
    """POST a payload never sent before with `token`; the status (201: written)."""
    body = f"payload {time.monotonic_ns()} {token}".encode()
    answer = httpx.post(
        f"{origin.url}/v1/payloads?object_type=Test",
        content=body,
        headers={"authorization": f"Bearer {token}"},
        timeout=10,
    )
    if answer.status_code == 201:
        assert answer.json()["hash"] == hashlib.sha256(body).hexdigest()
    return answer.status_code


def hang_up(server: Server, log_line: str, logged_before: int) -> None:
    """SIGHUP `server` and wait until its log shows `log_line` once more than before."""
    os.kill(server.process.pid, signal.SIGHUP)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        ended = server.process.poll()
        assert ended is None, f"{server.name} ended on SIGHUP (exit status {ended})"
        if server.log.read_text(errors="replace").count(log_line) > logged_before:
            return
        time.sleep(0.05)
    raise AssertionError(f"no {log_line!r} in {server.log}: {server.log.read_text()[-2000:]}")


def count(server: Server, log_line: str) -> int:
    return server.log.read_text(errors="replace").count(log_line)


def test_sighup_reloads_the_origins_tokens_and_a_broken_file_keeps_the_old_ones(
    stack: Stack, sample_sqlite: str, tmp_path: Path
) -> None:
    tokens = tmp_path / "tokens.toml"
    tokens.write_text(tokens_text("token-A"))
    origin = stack.origin(sample_sqlite, env={"OUTPOST_ORIGIN_TOKENS_FILE": str(tokens)})
    assert upload(origin, "token-A") == 201
    assert upload(origin, "token-B") == 401

    replace_file(tokens, tokens_text("token-B"))
    hang_up(origin, "reloaded: 1 tokens", count(origin, "reloaded: 1 tokens"))
    assert upload(origin, "token-A") == 401
    assert upload(origin, "token-B") == 201

    replace_file(tokens, '[[token]]\nname = "ops"\nrole = "admin"\ntoken = \n')  # cut short
    hang_up(origin, "reload refused", 0)
    assert "keeping the 1 tokens in use: tokens file" in origin.log.read_text()
    assert upload(origin, "token-B") == 201
    assert upload(origin, "token-A") == 401

    tokens.write_text("")  # emptied (a truncating editor, a half-done copy): no token at all
    hang_up(origin, "reload refused", 1)
    assert "holds no token" in origin.log.read_text()
    assert upload(origin, "token-B") == 201
    assert httpx.get(f"{origin.url}/_outpost/healthz").status_code == 200


def test_sighup_leaves_a_proxy_serving_hits_from_its_cache_on_open_connections(
    stack: Stack, sample_sqlite: str
) -> None:
    origin = stack.origin(sample_sqlite)
    proxy = stack.proxy("node-1", [origin.url])
    connection = Connection(proxy.url)
    request = f"GET {RESOLVE} HTTP/1.1\r\nHost: node\r\nAccept-Encoding: gzip\r\n\r\n"
    try:
        connection.send(request)
        first = connection.answer()
        assert first.status == 200 and "stored" in first.header("cache-status")

        hang_up(proxy, "SIGHUP: reloading", 0)
        connection.send(request)  # the connection opened before the signal still answers
        again = connection.answer()
    finally:
        connection.close()
    assert again.status == 200 and again.body == first.body
    assert again.header("cache-status").startswith("node-1; hit")
    other = httpx.get(proxy.url + RESOLVE, headers={"accept-encoding": "gzip"})
    assert other.headers["cache-status"].startswith("node-1; hit")
    assert proxy.process.poll() is None
