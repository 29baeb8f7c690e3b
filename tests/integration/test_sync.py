"""`outpost sync`: two real origins, a copy between them, and what the copy promises.

In-process (the origin's ASGI app, the sync's HTTP reader on it through `AppTransport`): a copy
from SQLite to PostgreSQL and back answers every read URL of the sample data set with the same
bytes and validators; a second run writes nothing; each conflict and each hostile answer is
refused with the target unchanged; the provenance of every copied change is recorded. Real
processes: `outpost sync --follow` through a proxy, with the source origin restarted, the
link (the proxy) cut, and the follower itself restarted; and the command line's dry run.
"""

from __future__ import annotations

import hashlib
import logging
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from support.apptransport import AppTransport
from support.asgi import AppClient
from support.origin import TOKENS, WRITER_TOKEN, MakeClient, admin, writer
from support.servers import PostgresServer, outpost_command
from support.stack import Stack

from origin.db import create_engines
from origin.sample import HLT_GLOBAL_TAG, PROMPT_GLOBAL_TAG
from origin.schema import changes, feed_head, metadata, sync_positions
from outpost.sync.errors import SourceUnusable, SyncConflicts
from outpost.sync.run import Selection, sync_once
from outpost.sync.source import Source
from outpost.sync.target import Target

BOTH = Selection((HLT_GLOBAL_TAG, PROMPT_GLOBAL_TAG))
SOURCE_URL = "http://origin.test"


def copy(app: AppClient, target_url: str, selection: Selection = BOTH, **options: Any) -> Any:
    source = Source(SOURCE_URL, transport=AppTransport(app), attempts=1)
    target = Target(target_url)
    try:
        return sync_once(source, target, selection, **options)
    finally:
        target.close()
        source.close()


def fingerprint(url: str) -> str:
    """Every row of every table of the database: equal fingerprints, an unchanged database."""
    engines = create_engines(url)
    digest = hashlib.sha256()
    try:
        with engines.reader.connect() as conn:
            for table in metadata.sorted_tables:
                rows = conn.execute(select(table).order_by(*table.primary_key.columns)).all()
                digest.update(orjson.dumps([[repr(v) for v in r] for r in rows]))
    finally:
        engines.dispose()
    return digest.hexdigest()


def read_urls(client: AppClient) -> list[str]:
    """Every read URL of the data set (histories and table queries, which show each
    database's own feed positions and row ids, aside)."""
    urls = ["/v1/globaltags", "/v1/tags", "/v1/tags?name=Ecal*", "/v1/tags?name=Si*_hlt"]
    gts = [g["name"] for g in client.get("/v1/globaltags").json()["globaltags"]]
    urls.append(f"/v1/diff/globaltags?a={gts[0]}&b={gts[-1]}")
    tags: set[str] = set()
    for gt in gts:
        urls.append(f"/v1/globaltags/{gt}")
        tags |= {m["tag"] for m in client.get(f"/v1/globaltags/{gt}").json()["map"]}
        for run in (1, 137, 500, 999):
            urls.append(f"/v1/resolve/{gt}?run={run}")
            urls.append(f"/v1/resolve/{gt}?lumi=7&run={run}&time=1767400000")
    payloads: set[str] = set()
    times: set[str] = set()
    for tag in sorted(tags):
        urls += [
            f"/v1/tags/{tag}",
            f"/v1/tags/{tag}/iovs",
            f"/v1/tags/{tag}/iovs?since=100&until=600",
        ]
        for iov in client.get(f"/v1/tags/{tag}/iovs").json()["iovs"]:
            payloads.add(iov["payload"])
            times.add(iov["insertion_time"])
            urls.append(f"/v1/tags/{tag}/iovs?snapshot={iov['insertion_time']}")
    for gt in gts:
        urls += [f"/v1/resolve/{gt}?run=500&snapshot={t}" for t in sorted(times)[::7]]
    for digest in sorted(payloads):
        urls += [f"/v1/payloads/{digest}", f"/v1/payloads/{digest}/info"]
    return urls


VALIDATORS = ("etag", "last-modified", "cache-control", "content-type", "repr-digest")


def answers(client: AppClient, urls: list[str]) -> list[tuple[Any, ...]]:
    found = []
    for url in urls:
        answer = client.get(url)
        found.append(
            (url, answer.status_code, answer.content, *(answer.headers.get(h) for h in VALIDATORS))
        )
    return found


@pytest.fixture
def source(sample_sqlite: str, make_client: MakeClient) -> AppClient:
    return make_client(sample_sqlite)


@pytest.mark.postgres
def test_a_copy_sqlite_to_postgresql_and_back_answers_every_url_alike(
    source: AppClient, make_client: MakeClient, pg: PostgresServer, tmp_path: Path
) -> None:
    pg.execute("CREATE DATABASE sync_copy")
    on_pg, back = pg.url("sync_copy"), f"sqlite:///{tmp_path / 'back.sqlite'}"
    first = copy(source, on_pg)
    assert first.written and len(first.plan.tags) == 30 and len(first.plan.payloads) == 197
    replica = make_client(on_pg)
    assert copy(replica, back).written
    urls = read_urls(source)
    assert len(urls) > 600
    expected = answers(source, urls)
    assert all(a[1] == 200 for a in expected)
    assert answers(replica, urls) == expected
    assert answers(make_client(back), urls) == expected

    before = fingerprint(on_pg)  # a second run writes nothing at all
    again = copy(source, on_pg)
    assert again.plan.empty and not again.written
    assert fingerprint(on_pg) == before


def test_a_second_run_copies_only_what_is_new(source: AppClient, tmp_path: Path) -> None:
    target = f"sqlite:///{tmp_path / 'replica.sqlite'}"
    copy(source, target)
    digest = upload(source, b"a new pedestal")
    body = {"iovs": [{"since": 1200, "payload": digest}]}
    assert (
        source.post("/v1/tags/EcalPedestals_v3_hlt/iovs", json=body, headers=writer()).status_code
        == 201
    )
    before = fingerprint(target)
    second = copy(source, target)
    assert [(t.source.name, t.iovs, t.create) for t in second.plan.tags] == [
        ("EcalPedestals_v3_hlt", 1, False)
    ]
    assert second.plan.payloads == (digest,) and second.written
    assert fingerprint(target) != before
    settled = fingerprint(target)
    assert not copy(source, target).written and fingerprint(target) == settled


def upload(client: AppClient, data: bytes) -> str:
    answer = client.post("/v1/payloads?object_type=EcalPedestals", content=data, headers=writer())
    assert answer.status_code in (200, 201), answer.text
    return str(answer.json()["hash"])


@pytest.fixture
def replica(source: AppClient, tmp_path: Path, make_client: MakeClient) -> tuple[str, AppClient]:
    """A replica of the sample, copied, and an origin over it (to write to it directly)."""
    url = f"sqlite:///{tmp_path / 'replica.sqlite'}"
    copy(source, url)
    return url, make_client(url)


def _history_differs(source: AppClient, target: AppClient) -> str:
    for client, data in ((source, b"at the source"), (target, b"on the target")):
        digest = upload(client, data)
        body = {"iovs": [{"since": 1500, "payload": digest}]}
        answer = client.post("/v1/tags/EcalPedestals_v3_hlt/iovs", json=body, headers=writer())
        assert answer.status_code == 201
    return "tag EcalPedestals_v3_hlt: its history differs on the target"


def _locked_and_extended(source: AppClient, target: AppClient) -> str:
    assert target.post("/v1/tags/EcalPedestals_v3_hlt/lock", headers=admin()).status_code == 200
    body = {"iovs": [{"since": 1500, "payload": upload(source, b"later")}]}
    assert (
        source.post("/v1/tags/EcalPedestals_v3_hlt/iovs", json=body, headers=writer()).status_code
        == 201
    )
    return "tag EcalPedestals_v3_hlt is locked on the target, and the source added 1 IOVs"


def _globaltag_edited_on_both_sides(source: AppClient, target: AppClient) -> str:
    for client, record in ((source, "NewAtSourceRcd"), (target, "NewOnTargetRcd")):
        current = client.get(f"/v1/globaltags/{HLT_GLOBAL_TAG}").json()["map"]
        entries = [*current, {"record": record, "label": "", "tag": current[0]["tag"]}]
        answer = client.put(
            f"/v1/globaltags/{HLT_GLOBAL_TAG}", json={"map": entries}, headers=admin()
        )
        assert answer.status_code == 200, answer.text
    return f"global tag {HLT_GLOBAL_TAG} was edited on the target"


@pytest.mark.parametrize(
    "diverge", [_history_differs, _locked_and_extended, _globaltag_edited_on_both_sides]
)
def test_a_conflict_is_refused_with_the_target_unchanged(
    source: AppClient,
    replica: tuple[str, AppClient],
    diverge: Callable[[AppClient, AppClient], str],
) -> None:
    url, target = replica
    expected = diverge(source, target)
    before = fingerprint(url)
    planned = copy(source, url, dry_run=True)  # the dry run names it, and writes nothing
    assert any(c.startswith(expected) for c in planned.plan.conflicts), planned.plan.conflicts
    with pytest.raises(SyncConflicts) as refused:
        copy(source, url)
    assert any(c.startswith(expected) for c in refused.value.conflicts)
    assert fingerprint(url) == before


class Hostile:
    """The origin, with one kind of answer spoiled on the way."""

    def __init__(self, app: ASGIApp, mode: str) -> None:
        self.app, self.mode = app, mode

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        spoil = {
            "corrupt payload": path.startswith("/v1/payloads/") and not path.endswith("/info"),
            "bad JSON": path == "/v1/tags/DTT0_v7_hlt",
            "oversized answer": path == "/v1/tags/DTT0_v7_hlt/history",
            "lying history": path == "/v1/tags/DTT0_v7_hlt/history",
        }[self.mode]
        if scope["type"] != "http" or not spoil:
            await self.app(scope, receive, send)
            return
        parts: list[bytes] = []
        start: dict[str, Any] = {}

        async def keep(message: Message) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            else:
                parts.append(message.get("body", b""))

        scope = {**scope, "headers": [h for h in scope["headers"] if h[0] != b"accept-encoding"]}
        await self.app(scope, receive, keep)
        body = self.spoiled(b"".join(parts))
        headers = [(k, v) for k, v in start["headers"] if k != b"content-length"]
        headers.append((b"content-length", str(len(body)).encode()))
        await send({**start, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    def spoiled(self, body: bytes) -> bytes:
        if self.mode == "corrupt payload":
            return body[:-1] + bytes([body[-1] ^ 1])
        if self.mode == "bad JSON":
            return body[:-3]
        if self.mode == "oversized answer":
            return body + b" " * (2 * 1024 * 1024)
        document = orjson.loads(body)  # a batch the tag's IOVs do not show
        document["history"][1]["iovs"].append({"channel": 0, "since": 77777, "payload": "a" * 64})
        return orjson.dumps(document)


@pytest.mark.parametrize(
    "mode", ["corrupt payload", "bad JSON", "oversized answer", "lying history"]
)
def test_a_hostile_answer_is_refused_and_nothing_is_written(
    sample_sqlite: str, make_client: MakeClient, tmp_path: Path, mode: str
) -> None:
    app = make_client(sample_sqlite)
    hostile = AppClient(Hostile(app.app, mode))
    hostile.__enter__()
    target = f"sqlite:///{tmp_path / 'replica.sqlite'}"
    Target(target).close()  # created and migrated: empty
    before = fingerprint(target)
    source = Source(
        SOURCE_URL, transport=AppTransport(hostile), attempts=1, max_json_bytes=1024 * 1024
    )
    try:
        with pytest.raises(SourceUnusable) as refused:
            sync_once(source, Target(target), BOTH)
    finally:
        source.close()
        hostile.__exit__(None, None, None)
    assert fingerprint(target) == before
    words = {
        "corrupt payload": "refused, nothing was written",
        "bad JSON": "not JSON",
        "oversized answer": "over 1048576 bytes",
        "lying history": "does not give its IOVs",
    }
    assert words[mode] in refused.value.detail


def test_the_target_records_where_each_change_came_from(
    source: AppClient, tmp_path: Path, make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"sqlite:///{tmp_path / 'replica.sqlite'}"
    with caplog.at_level(logging.INFO, logger="outpost.origin.audit"):
        outcome = copy(source, url)
    target = make_client(url)
    tag = "EcalPedestals_prompt_2025"
    at_source = source.get(f"/v1/tags/{tag}/history").json()["history"]
    copied = target.get(f"/v1/tags/{tag}/history").json()["history"]
    assert [e["kind"] for e in copied] == [e["kind"] for e in at_source] == ["tag", "iovs", "lock"]
    for here, there in zip(copied, at_source, strict=True):
        assert here["source"] == {"url": SOURCE_URL, "seq": there["seq"]}
        assert (here["by"], here["time"]) == (there["by"], there["time"])
    engines = create_engines(url)
    try:
        with engines.reader.connect() as conn:
            assert conn.scalar(select(sync_positions.c.seq)) == outcome.position
            entries = [orjson.loads(e) for e in conn.scalars(select(changes.c.entry))]
            assert all(e["source"]["url"] == SOURCE_URL for e in entries)
    finally:
        engines.dispose()
    assert any("copied from http://origin.test" in r.getMessage() for r in caplog.records)


# --- real processes -------------------------------------------------------------------------

FOLLOWED = "EcalPedestals_v3_hlt"


def publish(origin: str, since: int) -> None:
    auth = {"Authorization": f"Bearer {WRITER_TOKEN}"}
    data = b"pedestals from run %d" % since
    answer = httpx.post(
        f"{origin}/v1/payloads?object_type=EcalPedestals", content=data, headers=auth, timeout=10
    )
    assert answer.status_code == 201, answer.text
    body = {"iovs": [{"since": since, "payload": answer.json()["hash"]}]}
    answer = httpx.post(f"{origin}/v1/tags/{FOLLOWED}/iovs", json=body, headers=auth, timeout=10)
    assert answer.status_code == 201, answer.text


def held_rows(url: str) -> list[tuple[int, int, str]]:
    """The followed tag's IOV rows in a database: (since, insertion time, payload)."""
    from origin.schema import iovs

    engines = create_engines(url)
    try:
        with engines.reader.connect() as conn:
            c = iovs.c
            query = select(c.since, c.insertion_time, c.payload_hash).where(c.tag_name == FOLLOWED)
            return sorted((int(a), int(b), str(p)) for a, b, p in conn.execute(query))
    except OperationalError:  # not created by the follower yet
        return []
    finally:
        engines.dispose()


def until_held(url: str, since: int, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if any(row[0] == since for row in held_rows(url)):
            return
        time.sleep(0.2)
    raise AssertionError(f"the replica never got since {since}")


@pytest.fixture
def follower(tmp_path: Path) -> Iterator[Callable[[str, str], subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    logs: list[Any] = []

    def start(source: str, target: str) -> subprocess.Popen[bytes]:
        command = outpost_command(
            "sync",
            "--follow",
            "--from",
            source,
            "--to",
            target,
            "--globaltag",
            HLT_GLOBAL_TAG,
            "--wait",
            "2",
            "--timeout",
            "5",
        )
        log = open(tmp_path / f"follow-{len(started)}.log", "wb")  # noqa: SIM115
        logs.append(log)
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        started.append(process)
        return process

    yield start
    for process in started:
        process.kill()
        process.wait(10)
    for log in logs:
        log.close()


def test_follow_survives_restarts_and_a_cut_link(
    stack: Stack,
    sample_sqlite: str,
    tmp_path: Path,
    follower: Callable[[str, str], subprocess.Popen[bytes]],
) -> None:
    tokens = tmp_path / "tokens.toml"
    tokens.write_text(TOKENS)
    env = {"OUTPOST_ORIGIN_TOKENS_FILE": str(tokens)}
    origin = stack.origin(sample_sqlite, env=env)
    port = int(origin.url.rsplit(":", 1)[1])
    link = stack.proxy("link", [origin.url], env={"OUTPOST_PROXY_SUBSCRIBE": "true"})
    link_port = int(link.url.rsplit(":", 1)[1])
    replica = f"sqlite:///{tmp_path / 'replica.sqlite'}"
    process = follower(link.url, replica)
    publish(origin.url, 2001)  # whole copy first, then this from the feed
    until_held(replica, 2001)

    origin.kill()  # the source restarts
    origin = stack.origin(sample_sqlite, name="origin-again", env=env, port=port)
    publish(origin.url, 2002)
    until_held(replica, 2002)

    link.kill()  # the link is cut, changes happen meanwhile, then it is back
    publish(origin.url, 2003)
    time.sleep(1.5)
    stack.proxy("link-again", [origin.url], env={"OUTPOST_PROXY_SUBSCRIBE": "true"}, port=link_port)
    until_held(replica, 2003)

    process.terminate()  # the follower itself restarts, and resumes where it stood
    assert process.wait(10) == 0
    publish(origin.url, 2004)
    follower(link.url, replica)
    until_held(replica, 2004)

    assert held_rows(replica) == held_rows(sample_sqlite)  # nothing lost
    engines = create_engines(replica)
    try:
        with engines.reader.connect() as conn:
            entries = [orjson.loads(e) for e in conn.scalars(select(changes.c.entry))]
            positions = [e["source"]["seq"] for e in entries if e["kind"] == "iovs"]
            assert len(positions) == len(set(positions))  # nothing applied twice
            head = httpx.get(f"{origin.url}/v1/changes?after=0&limit=1", timeout=5).json()["head"]
            assert conn.scalar(select(sync_positions.c.seq)) == head
    finally:
        engines.dispose()


def test_the_command_line_dry_run_prints_the_plan_and_writes_nothing(
    stack: Stack, sample_sqlite: str, tmp_path: Path
) -> None:
    origin = stack.origin(sample_sqlite)
    replica = f"sqlite:///{tmp_path / 'replica.sqlite'}"
    base = ("sync", "--from", origin.url, "--to", replica, "--globaltag", PROMPT_GLOBAL_TAG)
    dry = subprocess.run(
        outpost_command(*base, "--dry-run", "--json"), capture_output=True, timeout=60
    )
    assert dry.returncode == 0, dry.stderr
    plan = orjson.loads(dry.stdout)
    assert (plan["written"], plan["payloads"], len(plan["tags"]), plan["conflicts"]) == (
        False,
        20,
        5,
        [],
    )
    engines = create_engines(replica)
    try:
        with engines.reader.connect() as conn:
            assert conn.scalar(select(feed_head.c.seq)) == 0
            assert conn.scalar(select(func.count()).select_from(changes)) == 0
    finally:
        engines.dispose()
    done = subprocess.run(outpost_command(*base), capture_output=True, timeout=60, text=True)
    assert done.returncode == 0 and "5 tags (5 new)" in done.stdout, done.stderr
