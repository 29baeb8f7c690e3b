"""`outpost pushtest`: the ALICE online case on one machine, push against polling.

Producers write a new object (`--object-size` random bytes) and append its IOV to one tag,
`--rate` times a second for `--seconds` (up to `PRODUCERS` objects being written at once), to
an `outpost origin` (SQLite, in a temporary
directory). Under the origin, `--sites` site proxies, each with `--nodes` node proxies under it
(upstreams: its site, then the origin). Every node proxy has a leaf: a process of that server,
here a task of this script, that records when it holds each object's bytes.

- **push**: every proxy subscribes to the change feed. A leaf long-polls its node's feed and,
  for each new IOV, reads the payload from its node (a hit: the node held it before it
  announced it).
- **polling** (Frontier's way, the same stack with push off and the origin's short TTL at 1 s):
  a leaf reads the tag's IOV answer through its node every second and fetches each payload it
  has not seen.

Per object, the latency is from its IOV write at the origin (the feed entry's time, the origin's
clock) to the moment the last leaf held its bytes; `lost` counts objects some leaf never held
within `GRACE_SECONDS` of the end. Origin payload requests per object come from the origin's
metrics; `cpu_cores` says how busy each part of the stack kept the machine's cores while the
objects were published (the harness is this process: producers and leaves). Both scenarios run
in the same invocation, one after the other, each on a fresh stack.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import orjson

from loadtest.stats import percentile
from outpost.localstack import free_port
from outpost.urls import parse_time

__all__ = ["PushConfig", "run_pushtest"]

TAG = "PushTestCalib"
TOKEN = "pushtest-writer-token"
GRACE_SECONDS = 10.0
POLL_SECONDS = 1.0
PRODUCERS = 8  # objects being written at once, at most


@dataclass(frozen=True)
class PushConfig:
    rate: float = 50.0
    object_size: int = 256 * 1024
    seconds: float = 30.0
    sites: int = 2
    nodes: int = 8  # per site
    startup_timeout: float = 60.0


@dataclass
class Process:
    name: str
    url: str
    process: subprocess.Popen[bytes]
    log: Path


@dataclass
class Tree:
    root: Path
    origin: Process | None = None
    sites: list[Process] = field(default_factory=list)
    nodes: list[Process] = field(default_factory=list)

    def all(self) -> list[Process]:
        return [p for p in (self.origin, *self.sites, *self.nodes) if p is not None]


def run_pushtest(config: PushConfig, progress: Any = None) -> dict[str, Any]:
    """Both scenarios; the push result with `polling` beside it."""
    say = progress or (lambda message: None)
    say("push: starting the stack")
    push = _scenario(config, push=True, say=say)
    say("polling: starting the stack")
    polling = _scenario(config, push=False, say=say)
    return {
        **push,
        "polling": polling,
        "config": {
            "rate": config.rate,
            "object_size": config.object_size,
            "seconds": config.seconds,
            "sites": config.sites,
            "nodes_per_site": config.nodes,
            "leaves": config.sites * config.nodes,
            "cpus": os.cpu_count(),
        },
    }


def _scenario(config: PushConfig, *, push: bool, say: Any) -> dict[str, Any]:
    with (
        tempfile.TemporaryDirectory(prefix="outpost-pushtest-") as tmp,
        _tree(Path(tmp), config, push) as tree,
    ):
        say(f"{'push' if push else 'polling'}: publishing for {config.seconds:g} s")
        return asyncio.run(_measure(tree, config, push))


@contextlib.contextmanager
def _tree(root: Path, config: PushConfig, push: bool) -> Iterator[Tree]:
    tree = Tree(root)
    try:
        _start(tree, config, push)
        yield tree
    finally:
        for process in reversed(tree.all()):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.process.pid, signal.SIGTERM)
        for process in reversed(tree.all()):
            try:
                process.process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(process.process.pid, signal.SIGKILL)
                process.process.wait()


def _start(tree: Tree, config: PushConfig, push: bool) -> None:
    root = tree.root
    tokens = root / "tokens.toml"
    tokens.write_text(
        f'[[token]]\nname = "pushtest"\nrole = "writer"\ntags = ["*"]\ntoken = "{TOKEN}"\n'
    )
    db = f"sqlite:///{root / 'conditions.sqlite'}"
    subprocess.run(
        [sys.executable, "-m", "outpost", "db", "init", "--db", db],
        check=True,
        capture_output=True,
    )
    origin_env = {"OUTPOST_ORIGIN_TTL_SHORT_SECONDS": "300" if push else "1"}
    tree.origin = _spawn(
        root,
        "origin",
        ["origin", "--db", db, "--tokens-file", str(tokens), "--log-level", "warning"],
        origin_env,
    )
    _wait(tree.origin, config.startup_timeout)
    subscribe = {"OUTPOST_PROXY_SUBSCRIBE": "true" if push else "false"}
    for s in range(1, config.sites + 1):
        tree.sites.append(
            _spawn(
                root,
                f"site-{s}",
                ["proxy", "--name", f"site-{s}", "--upstream", tree.origin.url],
                subscribe,
            )
        )
    for site_index, site in enumerate(tree.sites, start=1):
        for n in range(1, config.nodes + 1):
            name = f"node-{site_index}-{n}"
            args = ["proxy", "--name", name, "--upstream", site.url, "--upstream", tree.origin.url]
            tree.nodes.append(_spawn(root, name, args, subscribe))
    for process in (*tree.sites, *tree.nodes):
        _wait(process, config.startup_timeout)


def _spawn(root: Path, name: str, args: list[str], env: dict[str, str]) -> Process:
    port = free_port()
    log = root / f"{name}.log"
    command = [sys.executable, "-m", "outpost", *args, "--host", "127.0.0.1", "--port", str(port)]
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OUTPOST_")}
    with open(log, "wb") as out:
        process = subprocess.Popen(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**clean, **env},
            start_new_session=True,
        )
    return Process(name, f"http://127.0.0.1:{port}", process, log)


def _wait(process: Process, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.process.poll() is not None:
            tail = process.log.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{process.name} exited:\n{tail}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{process.url}/_outpost/healthz", timeout=1).status_code == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{process.name} did not start in {timeout} s")


# --- the measurement -----------------------------------------------------------------------


@dataclass
class Leaf:
    node: str
    held: dict[str, float] = field(default_factory=dict)  # payload hash → when its bytes were had
    committed: dict[str, float] = field(default_factory=dict)  # hash → its IOV's write time
    errors: int = 0


async def _measure(tree: Tree, config: PushConfig, push: bool) -> dict[str, Any]:
    assert tree.origin is not None
    origin = tree.origin.url
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        await _create_tag(session, origin)
        head = await _feed_head(session, origin)
        if push:  # every proxy follows the feed before anything is written
            await _until_following(session, [*tree.sites, *tree.nodes], head)
        before = await _origin_payload_requests(session, origin)
        leaves = [Leaf(node.name) for node in tree.nodes]
        stop = asyncio.Event()
        tasks = [
            asyncio.create_task(
                _push_leaf(session, node.url, leaf, head, stop)
                if push
                else _polling_leaf(session, node.url, leaf, stop)
            )
            for node, leaf in zip(tree.nodes, leaves, strict=True)
        ]
        cpu_before = _cpu_seconds(tree)
        published, achieved = await _publish(session, origin, config)
        cpu = _cpu_cores(cpu_before, _cpu_seconds(tree))
        deadline = time.monotonic() + GRACE_SECONDS
        while time.monotonic() < deadline and not all(
            set(published) <= set(leaf.held) for leaf in leaves
        ):
            await asyncio.sleep(0.05)
        stop.set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        after = await _origin_payload_requests(session, origin)
    return {**_result(published, achieved, leaves, after - before), "cpu_cores": cpu}


def _cpu_seconds(tree: Tree) -> dict[str, float]:
    """CPU time used so far by each part of the stack (Linux `/proc`; empty elsewhere), and the
    wall clock: where the machine's cores go is what limits the rate."""
    parts: dict[str, Sequence[Process | None]] = {
        "origin": [tree.origin],
        "sites": tree.sites,
        "nodes": tree.nodes,
    }
    used = {"wall": time.monotonic(), "harness": time.process_time()}
    try:
        for part, processes in parts.items():
            used[part] = sum(_process_cpu(p.process.pid) for p in processes if p is not None)
    except OSError:
        return {}
    return used


def _process_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def _cpu_cores(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """Cores each part kept busy on average over the publishing window."""
    if not before or not after:
        return {}
    wall = after["wall"] - before["wall"]
    return {k: round((after[k] - before[k]) / wall, 2) for k in after if k != "wall"}


async def _create_tag(session: aiohttp.ClientSession, origin: str) -> None:
    body = {"name": TAG, "time_type": "run", "payload_type": "Calib", "description": "pushtest"}
    async with session.post(f"{origin}/v1/tags", json=body, headers=_auth()) as answer:
        if answer.status not in (200, 201):
            raise RuntimeError(f"creating the tag: {answer.status} {await answer.text()}")


async def _feed_head(session: aiohttp.ClientSession, url: str) -> int:
    async with session.get(f"{url}/v1/changes?after=0&limit=1") as answer:
        document = orjson.loads(await answer.read())
        return int(document["head"])


async def _until_following(
    session: aiohttp.ClientSession, proxies: Sequence[Process], head: int
) -> None:
    deadline = time.monotonic() + 30
    for proxy in proxies:
        while True:
            async with session.get(f"{proxy.url}/_outpost/metrics") as answer:
                text = await answer.text()
            position = next(
                (
                    float(line.split()[1])
                    for line in text.splitlines()
                    if line.startswith("outpost_proxy_feed_position ")
                ),
                -1.0,
            )
            if position >= head:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{proxy.name} does not follow the feed")
            await asyncio.sleep(0.05)


async def _origin_payload_requests(session: aiohttp.ClientSession, origin: str) -> float:
    async with session.get(f"{origin}/_outpost/metrics") as answer:
        text = await answer.text()
    total = 0.0
    for line in text.splitlines():
        if line.startswith("outpost_origin_requests_total{") and all(
            label in line for label in ('route="/v1/payloads"', 'method="GET"')
        ):
            total += float(line.rsplit(" ", 1)[1])
    return total


async def _publish(
    session: aiohttp.ClientSession, origin: str, config: PushConfig
) -> tuple[list[str], float]:
    """Write an object and its IOV `rate` times a second, as several producers do: each object
    starts when it is due, up to `PRODUCERS` at once (the rate achieved is lower if the origin
    cannot take them). The hashes in the order of their IOVs' writes, and the rate achieved."""
    published: list[str] = []
    interval = 1.0 / config.rate
    count = int(config.rate * config.seconds)
    producers = asyncio.Semaphore(PRODUCERS)
    started = time.monotonic()

    async def produce(since: int) -> None:
        try:
            data = os.urandom(config.object_size)
            url = f"{origin}/v1/payloads?object_type=Calib"
            async with session.post(url, data=data, headers=_auth()) as answer:
                digest = (await answer.json())["hash"]
            body = {"iovs": [{"since": since, "payload": digest}]}
            url = f"{origin}/v1/tags/{TAG}/iovs"
            async with session.post(url, json=body, headers=_auth()) as answer:
                if answer.status != 201:
                    raise RuntimeError(f"appending an IOV: {answer.status} {await answer.text()}")
            published.append(digest)
        finally:
            producers.release()

    async with asyncio.TaskGroup() as group:
        for index in range(count):
            delay = started + index * interval - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            await producers.acquire()
            group.create_task(produce(index + 1))
    elapsed = time.monotonic() - started
    return published, count / elapsed if elapsed > 0 else 0.0


async def _push_leaf(
    session: aiohttp.ClientSession, node: str, leaf: Leaf, after: int, stop: asyncio.Event
) -> None:
    while not stop.is_set():
        try:
            async with session.get(f"{node}/v1/changes?after={after}&wait=5") as answer:
                document = orjson.loads(await answer.read())
        except (aiohttp.ClientError, TimeoutError, orjson.JSONDecodeError):
            leaf.errors += 1
            await asyncio.sleep(0.1)
            continue
        for entry in document.get("changes", []):
            if entry.get("kind") != "iovs" or entry.get("tag") != TAG:
                continue
            committed = parse_time(entry["insertion_time"], "time") / 1_000_000
            for row in entry["iovs"]:
                await _hold(session, node, leaf, row["payload"], committed)
        after = document.get("next", after)


async def _polling_leaf(
    session: aiohttp.ClientSession, node: str, leaf: Leaf, stop: asyncio.Event
) -> None:
    await asyncio.sleep(POLL_SECONDS * (hash(leaf.node) % 1000) / 1000)  # nodes out of phase
    while not stop.is_set():
        started = time.monotonic()
        try:
            async with session.get(f"{node}/v1/tags/{TAG}/iovs") as answer:
                document = orjson.loads(await answer.read())
            for row in document.get("iovs", []):
                if row["payload"] not in leaf.held:
                    committed = parse_time(row["insertion_time"], "time") / 1_000_000
                    await _hold(session, node, leaf, row["payload"], committed)
        except (aiohttp.ClientError, TimeoutError, orjson.JSONDecodeError, KeyError):
            leaf.errors += 1
        await asyncio.sleep(max(0.0, POLL_SECONDS - (time.monotonic() - started)))


async def _hold(
    session: aiohttp.ClientSession, node: str, leaf: Leaf, digest: str, committed: float
) -> None:
    if digest in leaf.held:
        return
    async with session.get(f"{node}/v1/payloads/{digest}") as answer:
        data = await answer.read()
    if answer.status == 200 and hashlib.sha256(data).hexdigest() == digest:
        leaf.held[digest] = time.time()
        leaf.committed[digest] = committed
    else:
        leaf.errors += 1


def _auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKEN}"}


def _result(
    published: list[str], achieved: float, leaves: list[Leaf], origin_requests: float
) -> dict[str, Any]:
    latencies: list[float] = []
    lost = 0
    for digest in published:
        if not all(digest in leaf.held for leaf in leaves):
            lost += 1
            continue
        committed = min(leaf.committed[digest] for leaf in leaves)
        latencies.append((max(leaf.held[digest] for leaf in leaves) - committed) * 1000)
    return {
        "published": len(published),
        "achieved_rate": round(achieved, 2),
        "lost": lost,
        "latency_ms": {
            "p50": round(percentile(latencies, 0.50), 1) if latencies else None,
            "p99": round(percentile(latencies, 0.99), 1) if latencies else None,
            "max": round(max(latencies), 1) if latencies else None,
        },
        "origin_requests_per_object": (
            round(origin_requests / len(published), 2) if published else None
        ),
        "leaf_errors": sum(leaf.errors for leaf in leaves),
    }
