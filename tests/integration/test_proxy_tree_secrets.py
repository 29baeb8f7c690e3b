"""Credentials in a real tree: what a registered URL receives, forged shared-tier entries, and
secrets in every byte a proxy shows (status, metrics, errors, logs, the CLI). Real processes on
loopback: origin, proxies, Redis, and a recording server standing in for whoever registers."""

from __future__ import annotations

import base64
import itertools
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import orjson
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.servers import free_port, outpost_command, redis_server, run_process
from support.stack import (
    REGISTER_TOKEN,
    RUN_CONTROL_TOKEN,
    SHARED_TIER_KEY,
    TREE_KEYS,
    Stack,
    tree_credentials,
)

from origin.sample import HLT_GLOBAL_TAG
from proxy.core.entry import Entry
from proxy.core.signing import generate_keypair
from proxy.storage.codec import decode, encode, seal, unseal
from proxy.storage.redis import PREFIX

RESOLVE = f"/v1/resolve/{HLT_GLOBAL_TAG}?run=500"
SUPPORT = Path(__file__).parents[1] / "support"
_names = itertools.count()


def recorder(stack: Stack, tmp_path: Path) -> str:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "uvicorn", "--app-dir", str(SUPPORT), "recorder:app"]
    command += ["--port", str(port), "--log-level", "warning"]
    stack.stack.enter_context(run_process(command, tmp_path / "recorder.log", f"{url}/healthz"))
    return url


def recorded(url: str) -> list[dict[str, Any]]:
    requests: list[dict[str, Any]] = httpx.get(f"{url}/_recorded").json()
    return requests


def cli(*args: str, token: str = RUN_CONTROL_TOKEN) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OUTPOST_RUN_CONTROL_TOKEN": token}
    return subprocess.run(
        outpost_command(*args), capture_output=True, text=True, env=env, timeout=60
    )


def wait_until(condition: Any, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


def test_a_registered_url_never_receives_a_credential(
    stack: Stack, sample_sqlite: str, tmp_path: Path
) -> None:
    origin = stack.origin(sample_sqlite)
    site = stack.proxy("site", [origin.url])
    spy = recorder(stack, tmp_path)
    registered = httpx.post(
        f"{site.url}/_outpost/register",
        json={"name": "spy", "url": spy},
        headers={"authorization": f"Bearer {REGISTER_TOKEN}"},
    )
    assert registered.status_code == 200

    flushed = cli("flush", "--run", "12", "--proxy", site.url, "--json")
    assert flushed.returncode == 0, flushed.stdout + flushed.stderr
    assert orjson.loads(flushed.stdout)["acked"] == 2
    warmed = httpx.post(
        f"{site.url}/_outpost/warm",
        json={"urls": [RESOLVE]},
        headers={"authorization": f"Bearer {RUN_CONTROL_TOKEN}"},
    )
    assert warmed.status_code == 200 and warmed.json()["acked"] == 2

    requests = recorded(spy)
    assert sorted(r["path"] for r in requests) == ["/_outpost/flush", "/_outpost/warm"]
    for request in requests:
        everything = orjson.dumps(request) + base64.b64decode(request["body"])
        for secret in (RUN_CONTROL_TOKEN, REGISTER_TOKEN, TREE_KEYS[0], SHARED_TIER_KEY):
            assert secret.encode() not in everything
        names = {name for name, _ in request["headers"]}
        assert "authorization" not in names and "outpost-signature" in names

    # What the spy captured commands nobody else: it is signed for "spy" alone.
    node = stack.proxy("node-1", [site.url], env=tree_credentials(signing=False))
    flush = next(r for r in requests if r["path"] == "/_outpost/flush")
    headers = {k: v for k, v in flush["headers"] if k in ("outpost-signature", "content-type")}
    body = base64.b64decode(flush["body"])
    for target in (node, site):
        replayed = httpx.post(f"{target.url}/_outpost/flush", content=body, headers=headers)
        assert replayed.status_code == 403, replayed.text
        assert "not for this proxy" in replayed.json()["detail"]


def test_a_child_sends_its_parent_the_registration_token_only(
    stack: Stack, sample_sqlite: str, tmp_path: Path
) -> None:
    """Even a child that holds every credential registers with the registration token alone."""
    origin = stack.origin(sample_sqlite)
    parent = recorder(stack, tmp_path)
    fast = {"OUTPOST_PROXY_HEARTBEAT_SECONDS": "0.2"}
    stack.proxy("node-1", [origin.url], parent=parent, env=fast)
    wait_until(lambda: len(recorded(parent)) >= 2)
    for request in recorded(parent):
        assert request["path"] == "/_outpost/register"
        headers = dict(request["headers"])
        assert headers["authorization"] == f"Bearer {REGISTER_TOKEN}"
        assert RUN_CONTROL_TOKEN.encode() not in orjson.dumps(request)


def forge(client: redis.Redis, secret: bytes | None) -> int:
    """Rewrite every stored entry with another body: unsigned (`secret` None) or sealed with a
    secret that is not the site's. Returns how many entries were forged."""
    forged = 0
    for name in client.keys(PREFIX + "*"):
        key = name.decode().removeprefix(PREFIX)
        opened = unseal(SHARED_TIER_KEY.encode(), key, client.get(name))
        value = decode(opened) if opened is not None else None
        if not isinstance(value, Entry):
            continue
        data = encode(replace(value, body=b"F" * len(value.body)))
        client.set(name, data if secret is None else seal(secret, key, data))
        forged += 1
    return forged


def test_a_forged_shared_tier_entry_is_dropped_and_counted(
    stack: Stack, sample_sqlite: str
) -> None:
    with redis_server() as url:
        origin = stack.origin(sample_sqlite)
        writer = stack.proxy("site-a", [origin.url], redis=url)
        genuine = httpx.get(writer.url + RESOLVE)
        assert genuine.status_code == 200
        client = redis.Redis.from_url(url)
        for attempt, secret in enumerate((None, b"a key that is not the site's")):
            assert forge(client, secret) >= 1
            reader = stack.proxy(f"site-b{attempt}", [origin.url], redis=url)  # empty memory
            answer = httpx.get(reader.url + RESOLVE)
            assert answer.status_code == 200
            assert answer.content == genuine.content
            assert b"FFFF" not in answer.content
            assert reader.metric("outpost_proxy_shared_store_rejected_total") >= 1
        client.close()


SECRET = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.~",
    min_size=6,
    max_size=20,
)


@settings(
    max_examples=3, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(SECRET, min_size=5, max_size=5, unique=True))
def test_no_secret_appears_in_any_byte_a_proxy_shows(
    stack: Stack, sample_sqlite: str, words: list[str]
) -> None:
    redis_pass, upstream_pass, parent_pass, run_control, register = (f"Qx{w}" for w in words)
    signing, _ = generate_keypair()
    shared = f"Qk{words[0]}-shared-tier-key"
    secrets = [redis_pass, upstream_pass, parent_pass, run_control, register, signing, shared]
    run = next(_names)
    if "origin" not in stack.servers:
        stack.origin(sample_sqlite)
    origin = stack["origin"]
    with redis_server() as plain:
        admin = redis.Redis.from_url(plain)
        admin.config_set("requirepass", redis_pass)
        admin.close()
        host = plain.removeprefix("redis://")
        dead = f"http://farm:{upstream_pass}@127.0.0.1:{free_port()}"
        env = {
            "OUTPOST_RUN_CONTROL_TOKEN": run_control,
            "OUTPOST_PROXY_REGISTER_TOKEN": register,
            "OUTPOST_PROXY_TREE_SIGNING_KEY": signing,
            "OUTPOST_PROXY_SHARED_TIER_KEY": shared,
            "OUTPOST_PROXY_HEARTBEAT_SECONDS": "0.2",
        }
        proxy = stack.proxy(
            f"edge-{run}",
            [dead, origin.url],
            parent=f"http://site:{parent_pass}@127.0.0.1:{free_port()}",
            redis=f"redis://:{redis_pass}@{host}",
            env=env,
            extra=("--log-level", "info"),
        )
        lonely = stack.proxy(f"lonely-{run}", [dead], env=env, extra=("--log-level", "info"))
        shown: list[bytes] = []
        with httpx.Client(timeout=30) as client:
            for url in (proxy.url + RESOLVE, lonely.url + RESOLVE, proxy.url + "/_outpost/nope"):
                shown.append(client.get(url).content)
            assert b"bad gateway" in shown[1]  # every upstream failed: the attempts are listed
            for path in ("/_outpost/status", "/_outpost/metrics"):
                shown.append(client.get(proxy.url + path).content)
            status = orjson.loads(shown[-2])
            assert status["redis"]["up"] is True  # the password was right: L2 in use
            assert "***" in status["redis"]["url"] and "***" in "".join(status["upstreams"])
            for token in ("wrong-token", register):
                flush = client.post(
                    f"{proxy.url}/_outpost/flush",
                    json={"run": 1},
                    headers={"authorization": f"Bearer {token}"},
                )
                shown.append(flush.content)
        shown.append(orjson.dumps(cli("status", "--proxy", proxy.url).__dict__, default=str))
        shown.append(
            orjson.dumps(
                cli("flush", "--run", "3", "--proxy", proxy.url, token=run_control).__dict__,
                default=str,
            )
        )
        assert b'"epoch"' in shown[-1] or b"epoch" in shown[-1]
        time.sleep(0.5)  # a few failed heartbeats and Redis traffic go to the logs
        for server in (proxy, lonely):
            shown.append(server.log.read_bytes())
    everything = b"\n".join(shown)
    assert b"upstream down" in everything or b"***" in everything
    for secret in secrets:
        assert secret.encode() not in everything, secret
