"""The change feed (`GET /v1/changes`): every committed write once, in commit order, with the
URLs it makes new; nothing for a write that changed nothing or failed; bounded, strictly parsed
queries; long polls woken by a write of this process or of another one.

SQLite and PostgreSQL, through the origin's ASGI app (lifespan included).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from typing import Any

import httpx
import orjson
import pytest
from support.asgi import AppClient
from support.origin import MakeClient, admin, writer

from origin.feed import FeedWatcher, feed_answer

TAG = "EcalPedestals_v1_hlt"
GT = "TEST_HLT_V1"


@pytest.fixture
def origin(empty_db: str, make_client: MakeClient) -> AppClient:
    return make_client(empty_db)


def feed(client: AppClient, query: str = "after=0") -> dict[str, Any]:
    answer = client.get(f"/v1/changes?{query}")
    assert answer.status_code == 200, answer.text
    assert answer.headers["cache-control"] == "no-store"
    document: dict[str, Any] = answer.json()
    return document


def upload(client: AppClient, data: bytes) -> str:
    answer = client.post("/v1/payloads?object_type=Blob", content=data, headers=writer())
    assert answer.status_code in (200, 201), answer.text
    return str(answer.json()["hash"])


def make_tag(client: AppClient, name: str = TAG) -> None:
    body = {"name": name, "time_type": "run", "payload_type": "Blob", "description": ""}
    answer = client.post("/v1/tags", json=body, headers=writer())
    assert answer.status_code in (200, 201), answer.text


def append(client: AppClient, tag: str, *iovs: tuple[int, str]) -> httpx.Response:
    body = {"iovs": [{"since": since, "payload": digest} for since, digest in iovs]}
    return client.post(f"/v1/tags/{tag}/iovs", json=body, headers=writer())


def put_gt(client: AppClient, tag: str, **extra: Any) -> httpx.Response:
    body = {"map": [{"record": "EcalPedestalsRcd", "label": "", "tag": tag}], **extra}
    return client.put(f"/v1/globaltags/{GT}", json=body, headers=admin())


def test_every_kind_of_write_is_in_the_feed_once_in_order_with_the_urls_it_makes_new(
    origin: AppClient,
) -> None:
    first = upload(origin, b"pedestals one")
    second = upload(origin, b"pedestals two")
    make_tag(origin)
    assert append(origin, TAG, (1, first), (100, second)).status_code == 201
    assert put_gt(origin, TAG).status_code == 201
    assert origin.post(f"/v1/tags/{TAG}/lock", headers=admin()).status_code == 200

    document = feed(origin)
    entries = document["changes"]
    assert [e["seq"] for e in entries] == [1, 2, 3, 4, 5, 6]
    assert document["head"] == 6 and document["next"] == 6 and document["after"] == 0
    assert [e["kind"] for e in entries] == [
        "payload",
        "payload",
        "tag",
        "iovs",
        "globaltag",
        "lock",
    ]
    assert entries[0]["payload"] == first and entries[0]["size"] == len(b"pedestals one")
    assert entries[0]["urls"] == [f"/v1/payloads/{first}"]
    iovs = entries[3]
    assert iovs["tag"] == TAG
    assert iovs["iovs"] == [
        {"channel": 0, "since": 1, "payload": first},
        {"channel": 0, "since": 100, "payload": second},
    ]
    assert f"/v1/tags/{TAG}/iovs" in iovs["urls"]
    assert {f"/v1/payloads/{first}", f"/v1/payloads/{second}"} <= set(iovs["urls"])
    assert entries[4]["globaltag"] == GT and f"/v1/globaltags/{GT}" in entries[4]["urls"]
    assert entries[5]["tag"] == TAG
    times = [e["time"] for e in entries[2:]]  # tag, IOV, map and lock writes share one clock
    assert times == sorted(times) and len(set(times)) == len(times)  # ISO 8601: sorts as time
    # the IOV entry's insertion time is the one the read API shows
    listed = origin.get(f"/v1/tags/{TAG}/iovs").json()
    assert {row["insertion_time"] for row in listed["iovs"]} == {iovs["insertion_time"]}


def test_a_write_that_changes_nothing_or_fails_records_nothing(origin: AppClient) -> None:
    digest = upload(origin, b"pedestals")
    make_tag(origin)
    assert put_gt(origin, TAG).status_code == 201
    head = feed(origin)["head"]

    upload(origin, b"pedestals")  # the same bytes again
    make_tag(origin)  # the same tag again
    assert put_gt(origin, TAG).status_code == 200  # the same map again
    missing = "ab" * 32
    assert append(origin, TAG, (1, digest), (2, missing)).status_code == 404  # all or nothing
    assert append(origin, "EcalNoSuchTag", (1, digest)).status_code == 404
    assert feed(origin)["head"] == head
    assert feed(origin, f"after={head}")["changes"] == []


def test_a_reader_pages_through_the_feed_with_limit_and_next(origin: AppClient) -> None:
    digests = [upload(origin, b"object %d" % i) for i in range(7)]
    seen: list[str] = []
    after = 0
    while True:
        page = feed(origin, f"after={after}&limit=3")
        assert len(page["changes"]) <= 3
        if not page["changes"]:
            break
        seen += [e["payload"] for e in page["changes"]]
        after = page["next"]
    assert seen == digests
    assert after == 7


def test_a_position_beyond_the_head_is_a_conflict_that_names_the_head(origin: AppClient) -> None:
    upload(origin, b"one")
    answer = origin.get("/v1/changes?after=5")
    assert answer.status_code == 409
    assert answer.headers["outpost-feed-head"] == "1"
    assert "beyond the feed's head 1" in answer.json()["detail"]


@pytest.mark.parametrize(
    "query",
    [
        "after=-1",
        "after=x",
        "after=1.5",
        "after=99999999999999999999999",
        "after=1&after=2",
        "limit=0",
        "limit=10001",
        "wait=61",
        "wait=-1",
        "since=1",
        "after",
        "after=%ZZ",
    ],
)
def test_a_malformed_feed_query_is_a_400_that_says_what_is_wrong(
    origin: AppClient, query: str
) -> None:
    answer = origin.get(f"/v1/changes?{query}")
    assert answer.status_code == 400, answer.text
    assert answer.json()["detail"]


def test_a_long_poll_is_answered_as_soon_as_a_write_commits(origin: AppClient) -> None:
    upload(origin, b"before")
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(feed, origin, "after=1&wait=30")
        with pytest.raises(concurrent.futures.TimeoutError):
            waiting.result(timeout=0.3)  # nothing new: it is held
        digest = upload(origin, b"after")
        document = waiting.result(timeout=10)  # not the 30 s of its wait
    assert [e["payload"] for e in document["changes"]] == [digest]


def test_a_long_poll_sees_a_write_made_by_another_process(
    empty_db: str, make_client: MakeClient
) -> None:
    reader = make_client(empty_db)  # its own engines and watcher: another worker
    writer_app = make_client(empty_db)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(feed, reader, "after=0&wait=30")
        with pytest.raises(concurrent.futures.TimeoutError):
            waiting.result(timeout=0.3)
        digest = upload(writer_app, b"from the other worker")
        document = waiting.result(timeout=10)
    assert [e["payload"] for e in document["changes"]] == [digest]


def test_a_long_poll_with_nothing_new_ends_after_its_wait_with_no_entries(
    origin: AppClient,
) -> None:
    document = feed(origin, "after=0&wait=1")
    assert document == {"after": 0, "head": 0, "next": 0, "changes": []}


@pytest.mark.postgres
@pytest.mark.parametrize("empty_db", ["postgresql"], indirect=True)
def test_concurrent_writers_get_positions_in_commit_order(origin: AppClient) -> None:
    """Eight threads writing at once: positions 1..N with no gap, and the times of the writes
    that share the database's clock increase with their positions."""
    make_tag(origin)
    digests = [upload(origin, b"object %d" % i) for i in range(40)]
    start = feed(origin)["head"]
    barrier = threading.Barrier(8)

    def write(worker: int) -> None:
        barrier.wait()
        for i in range(5):
            answer = append(origin, TAG, (worker * 100 + i, digests[worker * 5 + i]))
            assert answer.status_code == 201, answer.text

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(write, range(8)))
    entries = feed(origin, f"after={start}")["changes"]
    assert [e["seq"] for e in entries] == list(range(start + 1, start + 41))
    times = [e["time"] for e in entries]
    assert times == sorted(times) and len(set(times)) == 40


def test_feed_answer_splices_entries_as_stored() -> None:
    rows = [(3, '{"time":1,"kind":"tag","tag":"A","urls":["/v1/tags/A"]}')]

    document = orjson.loads(feed_answer(2, 9, rows))
    assert document == {
        "after": 2,
        "head": 9,
        "next": 3,
        "changes": [{"seq": 3, "time": 1, "kind": "tag", "tag": "A", "urls": ["/v1/tags/A"]}],
    }
    assert orjson.loads(feed_answer(9, 9, [])) == {"after": 9, "head": 9, "next": 9, "changes": []}


def test_the_watcher_wakes_every_waiter_on_a_write_of_this_process() -> None:
    async def main() -> None:
        head = 0
        watcher = FeedWatcher(lambda: head, poll_seconds=60)  # polling would be too slow
        waiters = [asyncio.create_task(watcher.wait_beyond(0, 30)) for _ in range(5)]
        await asyncio.sleep(0.05)
        assert not any(w.done() for w in waiters)
        await asyncio.to_thread(watcher.advanced, 1)  # from a worker thread, as writes are
        await asyncio.wait_for(asyncio.gather(*waiters), 5)
        await watcher.close()

    asyncio.run(main())
