"""`outpost purge URL… --proxy SITE`: given URLs leave every cache of the tree below SITE, memory
and Redis, every variant of them; other URLs stay. Real processes: origin → site (with Redis)
→ two node proxies that hold no run-control token and take the purge signed by the site."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest
from support.servers import outpost_command, redis_server
from support.stack import RUN_CONTROL_TOKEN, TREE_KEYS, Server, Stack, running_stack

from origin.sample import HLT_GLOBAL_TAG

PURGED = f"/v1/resolve/{HLT_GLOBAL_TAG}?run=500"  # JSON: a gzip and an identity variant
KEPT = f"/v1/resolve/{HLT_GLOBAL_TAG}?run=501"
GZIP, IDENTITY = {"accept-encoding": "gzip"}, {"accept-encoding": "identity"}
# A node proxy as deployed: it checks its parent's signature and holds no command credential.
LEAF = {
    "OUTPOST_RUN_CONTROL_TOKEN": "",
    "OUTPOST_PROXY_TREE_SIGNING_KEY": "",
    "OUTPOST_PROXY_SHARED_TIER_KEY": "",
    "OUTPOST_PROXY_TREE_PUBLIC_KEY": TREE_KEYS[1],
}


@pytest.fixture
def redis() -> Iterator[str]:
    with redis_server() as url:
        yield url


def build_tree(stack: Stack, db: str, redis: str | None = None) -> Stack:
    origin = stack.origin(db)
    site = stack.proxy("site", [origin.url], redis=redis)
    for name in ("node-1", "node-2"):
        stack.proxy(name, [site.url, origin.url], parent=site.url, env=LEAF)
    children: list[object] = []
    for _ in range(150):
        children = httpx.get(f"{site.url}/_outpost/status").json()["children"]
        if len(children) == 2:
            return stack
        time.sleep(0.1)
    raise AssertionError(f"site has children {children}")


@pytest.fixture
def tree(stack: Stack, sample_sqlite: str, redis: str) -> Stack:
    return build_tree(stack, sample_sqlite, redis)


@pytest.fixture(scope="module")
def quiet_tree(
    tmp_path_factory: pytest.TempPathFactory, sqlite_templates: dict[bool, Path]
) -> Iterator[Stack]:
    """A tree the tests only send refused purges to, shared by them."""
    root = tmp_path_factory.mktemp("quiet-tree")
    shutil.copyfile(sqlite_templates[True], root / "conditions.sqlite")
    with running_stack(root) as stack:
        yield build_tree(stack, f"sqlite:///{root / 'conditions.sqlite'}")


def purge(*args: str, token: str = RUN_CONTROL_TOKEN) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OUTPOST_")}
    env = {**clean, "OUTPOST_RUN_CONTROL_TOKEN": token}
    return subprocess.run(
        outpost_command("purge", *args), capture_output=True, text=True, env=env, timeout=60
    )


def cache_status(node: Server, path: str, headers: dict[str, str]) -> str:
    answer = httpx.get(node.url + path, headers=headers)
    assert answer.status_code == 200, answer.text
    return answer.headers["cache-status"]


def payload_url(node: Server) -> str:
    records = httpx.get(node.url + PURGED).json()["records"]
    return "/v1/payloads/" + next(r["payload"] for r in records if r["payload"])


def test_purge_removes_every_variant_of_the_urls_from_every_tier_and_keeps_the_rest(
    tree: Stack,
) -> None:
    site, nodes = tree["site"], [tree["node-1"], tree["node-2"]]
    payload = payload_url(nodes[0])
    for node in nodes:
        for path, headers in ((PURGED, GZIP), (PURGED, IDENTITY), (KEPT, GZIP), (payload, {})):
            cache_status(node, path, headers)
            assert f"{node.name}; hit" in cache_status(node, path, headers)

    full_url = f"http://any-host:1{payload}"  # a full URL: its path and query are purged
    done = purge(PURGED, full_url, "--proxy", site.url, "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    answer = orjson.loads(done.stdout)
    assert answer["urls"] == 2 and answer["acked"] == 3 and answer["failed"] == []
    assert answer["caches"] == ["node-1", "node-2", "site"]
    assert answer["removed"] == {"site": 3, "node-1": 3, "node-2": 3}  # 2 variants + 1 payload

    # each node's next fetch misses at every tier: site memory, Redis and the node
    for node, headers in ((nodes[0], GZIP), (nodes[1], IDENTITY)):
        status = cache_status(node, PURGED, headers)
        assert status.startswith("site; fwd=miss") and f"{node.name}; fwd=miss" in status, status
    assert "node-1; fwd=miss" in cache_status(nodes[0], PURGED, IDENTITY)  # no variant left
    status = cache_status(nodes[0], payload, {})
    assert status.startswith("site; fwd=miss") and "node-1; fwd=miss" in status, status
    assert "node-2; fwd=miss" in cache_status(nodes[1], payload, {})
    for node in nodes:
        assert f"{node.name}; hit" in cache_status(node, KEPT, GZIP)

    again = purge(PURGED, "--proxy", site.url)  # the table; nothing left to remove
    assert again.returncode == 0, again.stderr
    assert "3 acknowledged, 0 did not" in again.stdout


def test_purge_needs_the_run_control_token_and_nodes_take_no_bearer_token(
    quiet_tree: Stack,
) -> None:
    site, node = quiet_tree["site"], quiet_tree["node-1"]
    body = {"urls": [PURGED]}
    anonymous = httpx.post(f"{site.url}/_outpost/purge", json=body)
    assert anonymous.status_code == 401
    assert set(anonymous.json()) == {"error", "detail", "accepted"}
    wrong = {"authorization": "Bearer not-the-token"}
    assert httpx.post(f"{site.url}/_outpost/purge", json=body, headers=wrong).status_code == 403
    bearer = {"authorization": f"Bearer {RUN_CONTROL_TOKEN}"}
    assert httpx.post(f"{node.url}/_outpost/purge", json=body, headers=bearer).status_code == 403

    done = purge(PURGED, "--proxy", site.url, "--json", token="")
    assert done.returncode == 1
    assert "401" in orjson.loads(done.stdout)["error"]


@pytest.mark.parametrize(
    ("urls", "named"),
    [
        (["/v1/tags", "/v1/bad path"], "urls[1]"),
        (["/v1/tags", "no-slash"], "urls[1]"),
        (["/v1/payloads/%0d%0aX:y"], "urls[0]"),
        (["/v1/tags", 7], "urls[1]"),
        ([], "urls"),
        ("/v1/tags", "urls"),
        (["/v1/tags"] * 1001, "1001 URLs"),
        (["/" + "a" * 200_000], "urls[0] is 200001 bytes"),
    ],
    ids=[
        "space",
        "not-a-path",
        "escaped-crlf",
        "not-a-string",
        "empty",
        "not-a-list",
        "1001",
        "long",
    ],
)
def test_a_bad_purge_is_a_400_naming_what_is_wrong(
    quiet_tree: Stack, urls: object, named: str
) -> None:
    bearer = {"authorization": f"Bearer {RUN_CONTROL_TOKEN}"}
    site = quiet_tree["site"]
    answer = httpx.post(f"{site.url}/_outpost/purge", json={"urls": urls}, headers=bearer)
    assert answer.status_code == 400
    document = answer.json()
    assert set(document) == {"error", "detail", "accepted"}
    assert named in document["detail"]


def test_the_cli_refuses_what_is_not_a_url_as_a_usage_error() -> None:
    done = purge("/v1/ok", "tags/T", "--proxy", "http://127.0.0.1:9")  # nothing is sent
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [
        "outpost: purge: 'tags/T' is not a path such as /v1/tags/T/iovs or an http(s) URL "
        "(printable ASCII, other bytes percent-encoded)"
    ]


def test_a_child_that_does_not_acknowledge_is_named_and_the_exit_status_is_1(
    tree: Stack,
) -> None:
    site, node = tree["site"], tree["node-1"]
    cache_status(node, PURGED, GZIP)
    tree["node-2"].kill()
    done = purge(PURGED, "--proxy", site.url, "--json")
    assert done.returncode == 1
    answer = orjson.loads(done.stdout)
    assert [f["name"] for f in answer["failed"]] == ["node-2"]
    assert answer["acked"] == 2 and answer["removed"] == {"site": 1, "node-1": 1}
    text = purge(PURGED, "--proxy", site.url)
    assert text.returncode == 1
    assert "node-2" in text.stdout and "2 acknowledged, 1 did not" in text.stdout
