"""The change feed through the tree, real processes on loopback: origin → site → node, both
proxies subscribed. A follower at the node sees every new object once, in order, and its bytes
are already held at the node; the feed survives a site killed mid-stream, a slow follower, an
origin restart, and an upstream that corrupts payloads. `outpost.client`'s `follow` (blocking
and asyncio) yields the new objects with verified bytes, and goes on through the origin when
its node proxy dies."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from support.origin import ADMIN_TOKEN, TOKENS, WRITER_TOKEN
from support.stack import Server, Stack

from outpost.client import AsyncClient, Client, ClientSettings, NewObject

TAG = "EcalLaserFeed"
AUTH = {"Authorization": f"Bearer {WRITER_TOKEN}"}


@dataclass
class Follower:
    """A process on a farm node following its proxy's feed from where it started."""

    url: str
    after: int = 0
    seen: list[dict[str, object]] = field(default_factory=list)

    def start(self) -> None:
        answer = httpx.get(f"{self.url}/v1/changes?after=0&limit=1", timeout=10)
        assert answer.status_code == 200, answer.text
        self.after = answer.json()["head"]

    def poll(self, wait: int = 10) -> list[dict[str, object]]:
        answer = httpx.get(
            f"{self.url}/v1/changes?after={self.after}&wait={wait}", timeout=wait + 10
        )
        assert answer.status_code == 200, answer.text
        document = answer.json()
        entries: list[dict[str, object]] = document["changes"]
        self.seen += entries
        self.after = document["next"]
        return entries

    def until(self, count: int, kind: str = "iovs", seconds: float = 30) -> list[dict[str, object]]:
        """Poll until `count` entries of `kind` have been seen; those entries."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            found = [e for e in self.seen if e["kind"] == kind]
            if len(found) >= count:
                return found
            self.poll(wait=2)
        raise AssertionError(f"saw {len(found)} {kind} entries, not {count}: {self.seen}")


def publish(origin: Server, since: int, tag: str = TAG) -> bytes:
    """A new object and the IOV that points to it, as a calibration producer writes them."""
    seed = b"%s %d" % (tag.encode(), since)
    data = b"laser correction for run %d " % since + hashlib.sha256(seed).digest() * 64
    answer = httpx.post(f"{origin.url}/v1/payloads?object_type=Laser", content=data, headers=AUTH)
    assert answer.status_code == 201, answer.text
    digest = answer.json()["hash"]
    body = {"iovs": [{"since": since, "payload": digest}]}
    answer = httpx.post(f"{origin.url}/v1/tags/{tag}/iovs", json=body, headers=AUTH)
    assert answer.status_code == 201, answer.text
    return data


def make_tag(origin: Server, name: str = TAG) -> None:
    body = {"name": name, "time_type": "run", "payload_type": "Laser", "description": ""}
    answer = httpx.post(f"{origin.url}/v1/tags", json=body, headers=AUTH)
    assert answer.status_code == 201, answer.text


def following(server: Server, seconds: float = 15) -> None:
    """Wait until `server` follows the feed (it knows a position)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.metric("outpost_proxy_feed_position") > 0:
            return
        time.sleep(0.1)
    raise AssertionError(f"{server.name} does not follow the feed")


@pytest.fixture
def origin(stack: Stack, sample_sqlite: str, tmp_path: Path) -> Server:
    tokens = tmp_path / "tokens.toml"
    tokens.write_text(TOKENS)
    origin = stack.origin(sample_sqlite, env={"OUTPOST_ORIGIN_TOKENS_FILE": str(tokens)})
    make_tag(origin)
    return origin


@pytest.fixture
def tree(stack: Stack, origin: Server) -> Iterator[tuple[Server, Server]]:
    site = stack.proxy("site", [origin.url], env={"OUTPOST_PROXY_SUBSCRIBE": "true"})
    node = stack.proxy("node", [site.url, origin.url], parent=site.url)  # subscribes: a parent
    following(site)
    following(node)
    yield site, node


def hit_at(answer: httpx.Response, name: str) -> bool:
    """Whether `name`, the last cache on the way, answered from what it held."""
    return answer.headers["cache-status"].split(", ")[-1].startswith(f"{name}; hit")


def payload_urls(entry: dict[str, object]) -> list[str]:
    urls = entry["urls"]
    assert isinstance(urls, list)
    return [u for u in urls if u.startswith("/v1/payloads/")]


def test_every_new_object_reaches_a_follower_once_in_order_and_is_already_held_at_the_node(
    origin: Server, tree: tuple[Server, Server]
) -> None:
    _, node = tree
    follower = Follower(node.url)
    follower.start()
    published = {
        hashlib.sha256(d).hexdigest(): d for d in (publish(origin, r) for r in range(1, 6))
    }
    announced = follower.until(5)
    seqs = [e["seq"] for e in follower.seen]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)  # in order, never twice
    assert [e["iovs"][0]["since"] for e in announced] == [1, 2, 3, 4, 5]  # type: ignore[index]
    for entry in announced:
        (url,) = payload_urls(entry)
        answer = httpx.get(node.url + url)
        assert answer.status_code == 200
        assert answer.content == published[url.rsplit("/", 1)[1]]
        assert hit_at(answer, "node"), answer.headers
    # each object cost the origin one request: the site's; the node fetched it from the site
    fetched = origin.metric(
        "outpost_origin_requests_total", method="GET", route="/v1/payloads", status="200"
    )
    assert fetched == 5
    assert node.metric("outpost_proxy_feed_prefetched_total", result="held") >= 5
    feed = httpx.get(f"{node.url}/_outpost/status").json()["feed"]
    assert feed["position"] == follower.after and feed["behind"] == 0


def test_the_tag_answer_a_node_held_is_dropped_when_the_feed_changes_it(
    origin: Server, tree: tuple[Server, Server]
) -> None:
    _, node = tree
    follower = Follower(node.url)
    follower.start()
    publish(origin, 1)
    follower.until(1)
    first = httpx.get(f"{node.url}/v1/tags/{TAG}/iovs").json()
    publish(origin, 2)
    follower.until(2)
    second = httpx.get(f"{node.url}/v1/tags/{TAG}/iovs").json()
    assert [i["since"] for i in first["iovs"]] == [1]
    assert [i["since"] for i in second["iovs"]] == [1, 2]  # not the stored answer of before


def test_a_site_subscribed_to_a_global_tag_holds_the_payloads_of_the_tags_it_maps(
    stack: Stack, origin: Server
) -> None:
    other = "EcalOtherFeed"
    make_tag(origin, other)
    put_globaltag(origin, "FeedGT", [TAG])
    site = stack.proxy(
        "site", [origin.url], extra=("--subscribe", "--subscribe-globaltag", "FeedGT")
    )
    following(site)
    assert httpx.get(f"{site.url}/_outpost/status").json()["feed"]["mapped_tags"] == 1
    follower = Follower(site.url)
    follower.start()

    def held_at_site(data: bytes) -> bool:
        answer = httpx.get(f"{site.url}/v1/payloads/{hashlib.sha256(data).hexdigest()}")
        assert answer.status_code == 200 and answer.content == data
        return hit_at(answer, "site")

    mapped, unmapped = publish(origin, 1), publish(origin, 1, other)
    follower.until(2)  # announced: what the site holds, it held before announcing
    assert held_at_site(mapped)
    assert not held_at_site(unmapped)  # fetched now, by this request

    put_globaltag(origin, "FeedGT", [TAG, other])  # the feed tells the site its map changed
    follower.until(1, kind="globaltag")
    now_mapped = publish(origin, 2, other)
    follower.until(3)
    assert held_at_site(now_mapped)
    assert httpx.get(f"{site.url}/_outpost/status").json()["feed"]["mapped_tags"] == 2


def put_globaltag(origin: Server, name: str, tags: list[str]) -> None:
    records = [{"record": f"{tag}Rcd", "label": "", "tag": tag} for tag in tags]
    answer = httpx.put(
        f"{origin.url}/v1/globaltags/{name}",
        json={"map": records},
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
    )
    assert answer.status_code in (200, 201), answer.text


def test_a_site_killed_mid_stream_loses_nothing_and_repeats_nothing(
    origin: Server, tree: tuple[Server, Server]
) -> None:
    site, node = tree
    follower = Follower(node.url)
    follower.start()
    for run in (1, 2, 3):
        publish(origin, run)
    follower.until(3)
    site.kill()
    for run in (4, 5, 6):
        publish(origin, run)
    announced = follower.until(6, seconds=60)  # the node fails over to the origin's feed
    assert [e["iovs"][0]["since"] for e in announced] == [1, 2, 3, 4, 5, 6]  # type: ignore[index]
    seqs = [e["seq"] for e in follower.seen]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    for entry in announced[3:]:
        (url,) = payload_urls(entry)
        assert hit_at(httpx.get(node.url + url), "node")


def test_a_follower_too_slow_for_the_nodes_buffer_catches_up_from_upstream(
    stack: Stack, origin: Server
) -> None:
    node = stack.proxy(
        "node",
        [origin.url],
        env={"OUTPOST_PROXY_SUBSCRIBE": "true", "OUTPOST_PROXY_FEED_BUFFER_ENTRIES": "3"},
    )
    following(node)
    slow, fast = Follower(node.url), Follower(node.url)
    slow.start()
    fast.start()
    for run in range(1, 9):  # 16 entries: far more than the node keeps
        publish(origin, run)
        fast.poll(wait=5)
    fast.until(8)
    announced = slow.until(8)  # its first polls are answered upstream, from the whole feed
    assert [e["iovs"][0]["since"] for e in announced] == list(range(1, 9))  # type: ignore[index]
    assert [e["seq"] for e in slow.seen] == [e["seq"] for e in fast.seen]


def test_the_feed_goes_on_across_an_origin_restart(
    stack: Stack, sample_sqlite: str, tmp_path: Path
) -> None:
    tokens = tmp_path / "tokens.toml"
    tokens.write_text(TOKENS)
    env = {"OUTPOST_ORIGIN_TOKENS_FILE": str(tokens)}
    origin = stack.origin(sample_sqlite, env=env)
    make_tag(origin)
    node = stack.proxy("node", [origin.url], env={"OUTPOST_PROXY_SUBSCRIBE": "true"})
    following(node)
    follower = Follower(node.url)
    follower.start()
    publish(origin, 1)
    follower.until(1)
    port = int(origin.url.rsplit(":", 1)[1])
    origin.kill()
    origin = stack.origin(sample_sqlite, name="origin-again", env=env, port=port)
    publish(origin, 2)
    announced = follower.until(2, seconds=60)
    assert [e["iovs"][0]["since"] for e in announced] == [1, 2]  # type: ignore[index]
    seqs = [e["seq"] for e in follower.seen]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))  # the sequence simply continued


def test_a_corrupted_announced_payload_is_fetched_elsewhere_before_it_is_announced(
    stack: Stack, origin: Server
) -> None:
    corrupt = stack.support_app("corrupt")  # no feed, and wrong bytes for every payload
    node = stack.proxy("node", [corrupt, origin.url], env={"OUTPOST_PROXY_SUBSCRIBE": "true"})
    following(node)
    follower = Follower(node.url)
    follower.start()
    data = publish(origin, 1)
    (entry,) = follower.until(1)
    (url,) = payload_urls(entry)
    answer = httpx.get(node.url + url)
    assert answer.content == data
    assert hit_at(answer, "node")
    assert (
        node.metric("outpost_proxy_upstream_errors_total", upstream=corrupt, kind="integrity") >= 1
    )


def follow_in_thread(client: Client, count: int, **options: object) -> Future[list[NewObject]]:
    """`client.follow` in a thread, until it yielded `count` objects."""

    def take() -> list[NewObject]:
        taken: list[NewObject] = []
        for new in client.follow(**options):  # type: ignore[arg-type]
            taken.append(new)
            if len(taken) == count:
                return taken
        return taken

    return ThreadPoolExecutor(1).submit(take)


CLIENT = ClientSettings(timeout=6, connect_timeout=2, rounds=3, backoff=0.2)


def test_a_farm_process_follows_its_node_and_gets_each_new_object_verified(
    origin: Server, tree: tuple[Server, Server]
) -> None:
    _, node = tree
    client = Client(servers=[origin.url], proxies=[node.url], settings=CLIENT)
    followed = follow_in_thread(client, 3, tags=["EcalLaser*"])
    time.sleep(1)  # it has learned where the feed stands
    published = [publish(origin, run) for run in (7, 8, 9)]
    objects = followed.result(timeout=60)
    assert [o.since for o in objects] == [7, 8, 9]
    assert [o.data for o in objects] == published
    assert all(o.tag == TAG for o in objects)
    seqs = [o.iov.seq for o in objects]
    assert seqs == sorted(seqs)
    client.close()


def test_the_follower_goes_on_from_the_origin_when_its_node_is_gone(
    origin: Server, tree: tuple[Server, Server]
) -> None:
    _, node = tree
    client = Client(servers=[origin.url], proxies=[node.url], settings=CLIENT)
    followed = follow_in_thread(client, 4)
    time.sleep(1)
    publish(origin, 1)
    publish(origin, 2)
    deadline = time.monotonic() + 30
    while node.metric("outpost_proxy_feed_prefetched_total", result="held") < 2:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    node.kill()
    publish(origin, 3)
    publish(origin, 4)
    objects = followed.result(timeout=90)
    assert [o.since for o in objects] == [1, 2, 3, 4]  # none lost, none twice
    client.close()


def test_the_async_follower_yields_the_same_objects(
    origin: Server, tree: tuple[Server, Server]
) -> None:
    _, node = tree

    async def follow() -> list[int]:
        async with AsyncClient(servers=[origin.url], proxies=[node.url], settings=CLIENT) as aio:
            head = await aio.feed_head()
            publish(origin, 11)
            publish(origin, 12)
            seen: list[int] = []
            async for new in aio.follow(after=head, tags=[TAG]):
                assert hashlib.sha256(new.data).hexdigest() == new.payload
                seen.append(new.since)
                if len(seen) == 2:
                    return seen
        return []

    assert asyncio.run(asyncio.wait_for(follow(), 60)) == [11, 12]
