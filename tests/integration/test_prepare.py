"""`outpost prepare`: run control proves every cache holds the run's conditions, then records
the run. Real processes: origin (with a run-control token in its tokens file) → site → node
proxies that take commands signed by the site; the CLI as operators run it."""

from __future__ import annotations

import hashlib
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from support.origin import ADMIN_TOKEN, TOKENS
from support.servers import outpost_command
from support.stack import REGISTER_TOKEN, RUN_CONTROL_TOKEN, TREE_KEYS, Server, Stack

from origin.sample import HLT_GLOBAL_TAG
from outpost.client import Client, ConditionsMismatch
from outpost.conditions import conditions_digest

RUN = 500
RESOLVE = f"/v1/resolve/{HLT_GLOBAL_TAG}?run={RUN}"
LEAF = {  # a node proxy as deployed: it checks the site's signature, holds no credential
    "OUTPOST_RUN_CONTROL_TOKEN": "",
    "OUTPOST_PROXY_TREE_SIGNING_KEY": "",
    "OUTPOST_PROXY_SHARED_TIER_KEY": "",
    "OUTPOST_PROXY_TREE_PUBLIC_KEY": TREE_KEYS[1],
}
RUN_CONTROL = f"""
[[token]]
name = "run-control"
role = "runcontrol"
token = "{RUN_CONTROL_TOKEN}"
"""


@pytest.fixture
def origin(stack: Stack, sample_sqlite: str, tmp_path: Path) -> Server:
    tokens = tmp_path / "tokens.toml"
    tokens.write_text(TOKENS + RUN_CONTROL)
    return stack.origin(sample_sqlite, env={"OUTPOST_ORIGIN_TOKENS_FILE": str(tokens)})


@pytest.fixture
def tree(stack: Stack, origin: Server) -> Stack:
    site = stack.proxy("site", [origin.url])
    for name in ("node-1", "node-2"):
        stack.proxy(name, [site.url], parent=site.url, env=LEAF)
    wait_for_children(site, 2)
    return stack


def wait_for_children(site: Server, count: int) -> None:
    children: list[object] = []
    for _ in range(150):
        children = httpx.get(f"{site.url}/_outpost/status").json()["children"]
        if len(children) == count:
            return
        time.sleep(0.1)
    raise AssertionError(f"site has children {children}")


def outpost(*args: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OUTPOST_")}
    env = {**clean, "OUTPOST_RUN_CONTROL_TOKEN": RUN_CONTROL_TOKEN}
    return subprocess.run(
        outpost_command(*args), capture_output=True, text=True, env=env, timeout=120
    )


def prepare(site: Server, origin: Server, *extra: str) -> tuple[int, dict[str, Any]]:
    done = outpost(
        "prepare",
        "--run",
        str(RUN),
        "--globaltag",
        HLT_GLOBAL_TAG,
        "--proxy",
        site.url,
        "--server",
        origin.url,
        "--json",
        *extra,
    )
    assert done.stdout, done.stderr
    return done.returncode, orjson.loads(done.stdout)


def correct(origin: Server) -> str:
    """A correction of one record of the run, as a calibration expert writes it: new bytes,
    and an IOV at the run for the record's tag. Returns the record's key."""
    records = httpx.get(origin.url + RESOLVE).json()["records"]
    for r in records:
        tag = httpx.get(f"{origin.url}/v1/tags/{r['tag']}").json()
        if r["payload"] and r["time_type"] == "run" and tag["state"] == "open":
            break
    else:
        raise AssertionError("no open run-keyed record to correct")
    auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    data = b"corrected constants " + hashlib.sha256(r["payload"].encode()).digest() * 8
    posted = httpx.post(f"{origin.url}/v1/payloads", content=data, headers=auth)
    assert posted.status_code == 201, posted.text
    iov = {"since": RUN, "channel": r["channel"], "payload": posted.json()["hash"]}
    posted = httpx.post(f"{origin.url}/v1/tags/{r['tag']}/iovs", json={"iovs": [iov]}, headers=auth)
    assert posted.status_code == 201, posted.text
    return f"{r['record']}/{r['label']}/{r['channel']}"


def origin_digest(origin: Server) -> str:
    return conditions_digest(httpx.get(origin.url + RESOLVE).json()["records"])


def test_every_cache_agrees_the_run_is_recorded_and_nodes_check_themselves_against_it(
    tree: Stack,
) -> None:
    origin, site = tree["origin"], tree["site"]
    status, report = prepare(site, origin)
    assert status == 0, report
    attestation = report["attestation"]
    assert attestation["answered"] == attestation["agree"] == 3, attestation
    assert attestation["differ"] == [] and attestation["failed"] == []
    assert report["digest"] == origin_digest(origin)
    assert report["record"]["created"] is True

    record = httpx.get(f"{origin.url}/v1/runs/{RUN}").json()
    assert record["digest"] == report["digest"] and record["globaltag"] == HLT_GLOBAL_TAG
    assert record["by"] == "run-control"
    assert record["attestation"] == {"caches": 3, "agree": 3, "differ": [], "failed": []}

    again_status, again = prepare(site, origin)  # the same conditions: the record stands
    assert again_status == 0 and again["record"]["created"] is False, again

    with Client(proxies=[tree["node-1"].url]) as client:  # a farm node checks itself
        expected = client.run_record(RUN)
        conditions = client.fetch_run(HLT_GLOBAL_TAG, RUN, expect=expected)
        assert conditions.resolution.records == expected.records

    changed = correct(origin)
    with Client(servers=[origin.url]) as client, pytest.raises(ConditionsMismatch) as raised:
        client.fetch_run(HLT_GLOBAL_TAG, RUN, expect=expected)
    assert any(line.startswith(changed + ":") for line in raised.value.differences)

    shown = outpost(  # the conditions the run was taken with, correction or not
        "resolve", HLT_GLOBAL_TAG, "--run", str(RUN), "--as-run-record",
        "--server", origin.url, "--json",
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    document = orjson.loads(shown.stdout)
    assert conditions_digest(document["records"]) == record["digest"] != origin_digest(origin)
    assert document["run_record"]["snapshot"] == record["snapshot"]

    status, later = prepare(site, origin)  # run control cannot rewrite what a run was taken with
    assert status == 1 and later["attestation"]["agree"] == 3
    assert later["record"]["error"].startswith("409"), later["record"]


def test_a_node_holding_an_older_answer_is_named_with_the_record_and_repair_fixes_it(
    tree: Stack,
) -> None:
    origin, site = tree["origin"], tree["site"]
    late = tree.proxy("node-late", [site.url], env=LEAF)  # not registered with the site yet
    with Client(proxies=[late.url]) as client:
        client.fetch_run(HLT_GLOBAL_TAG, RUN)  # it holds the run as it is now
    changed = correct(origin)
    flushed = outpost("flush", "--run", str(RUN), "--proxy", site.url, "--json")
    assert flushed.returncode == 0 and orjson.loads(flushed.stdout)["acked"] == 3, flushed.stdout
    warmed = outpost("warm", "--globaltag", HLT_GLOBAL_TAG, "--run", str(RUN), "--proxy", site.url)
    assert warmed.returncode == 0, warmed.stdout + warmed.stderr
    registered = httpx.post(  # it registers now: it missed the flush and the warm
        f"{site.url}/_outpost/register",
        json={"name": "node-late", "url": late.url},
        headers={"Authorization": f"Bearer {REGISTER_TOKEN}"},
    )
    assert registered.status_code == 200, registered.text

    status, report = prepare(site, origin, "--no-flush", "--no-warm")
    assert status == 1, report
    attestation = report["attestation"]
    assert attestation["answered"] == 4 and attestation["agree"] == 3
    [group] = attestation["differ"]
    assert group["caches"] == ["node-late"]
    [difference] = group["differences"]
    assert difference.startswith(changed + ": expected "), difference
    assert "record" not in report
    assert httpx.get(f"{origin.url}/v1/runs/{RUN}").status_code == 404

    status, repaired = prepare(site, origin, "--no-flush", "--no-warm", "--repair")
    assert status == 0, repaired
    assert repaired["first_attestation"]["differ"] == ["node-late"]
    assert repaired["attestation"]["agree"] == repaired["attestation"]["answered"] == 4
    assert repaired["record"]["created"] is True
    held = httpx.get(late.url + RESOLVE).json()["records"]
    assert conditions_digest(held) == origin_digest(origin)


def test_attest_needs_run_controls_credential_and_names_a_dead_node_as_not_answering(
    tree: Stack,
) -> None:
    origin, site = tree["origin"], tree["site"]
    body = {"globaltag": HLT_GLOBAL_TAG, "run": RUN, "expected": "0" * 64}
    url = f"{site.url}/_outpost/attest"
    assert httpx.post(url, json=body).status_code == 401
    wrong = {"Authorization": "Bearer not-the-token"}
    assert httpx.post(url, json=body, headers=wrong).status_code == 403
    auth = {"Authorization": f"Bearer {RUN_CONTROL_TOKEN}"}
    for bad in ({**body, "run": -1}, {**body, "globaltag": "a b"}, {**body, "expected": 3}, []):
        answer = httpx.post(url, json=bad, headers=auth)
        assert answer.status_code == 400 and answer.json()["detail"], answer.text
    answer = httpx.post(url, json=body, headers=auth)  # nobody holds "000…": all differ
    assert answer.status_code == 200
    assert answer.json()["agree"] == 0 and answer.json()["answered"] == 3

    tree["node-2"].kill()
    done = outpost(
        "prepare", "--run", str(RUN), "--globaltag", HLT_GLOBAL_TAG,
        "--proxy", site.url, "--server", origin.url,
    )  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    assert "2/3 caches hold conditions" in done.stdout
    assert "node-2 did not answer" in done.stdout
    assert "run record not written" in done.stdout
    assert "Traceback" not in done.stderr
    assert httpx.get(f"{origin.url}/v1/runs/{RUN}").status_code == 404
