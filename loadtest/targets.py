"""What a storm runs against: Outpost's tree, a squid hierarchy, or nginx serving static files.

    with open_target("squid", node_proxies=4, db=…, globaltag=…, runs=[500, 501], work=…) as t:
        t.node_urls                # where the simulated nodes connect, spread round-robin
        t.before_run(500)          # run control's part before the run starts
        t.origin_url               # the origin, for its request and byte counters

All three put the same origin (`outpost origin` on the same database) behind them:

- `outpost`: site proxy + K node proxies; before each run, run control flushes the tree through
  the site proxy and waits until every cache acknowledged.
- `squid`: Debian's squid as site cache in front of the origin and K node caches in front of the
  site (accelerators, memory caches, `collapsed_forwarding on`). squid has no flush: the nodes'
  resolve request of each run carries `Cache-Control: max-age=0` (frontier_client's soft
  refresh), so each tier revalidates it; payloads are fetched as they are (immutable, cached).
- `nginx-static`: nginx serving the same bytes as files (the resolve answer of each run and every
  payload, copied from the origin before the run starts): no cache logic at all, the floor the
  load generator imposes on this machine.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from outpost.client.answers import decode_resolution
from outpost.commands.runcontrol import flush
from outpost.localstack import LocalStack, free_port
from outpost.urls import Payload, Resolve

from .peers import find_peer, prepare_nginx_static, prepare_squid

__all__ = ["TARGETS", "LoadTestError", "Target", "open_target"]

TARGETS = ("outpost", "squid", "nginx-static")


class LoadTestError(RuntimeError):
    """The load test could not run to the end (Locust died, nodes never reported, …)."""


@dataclass
class Target:
    name: str
    stack: LocalStack
    node_urls: list[str]
    soft_refresh: bool = False  # the nodes' resolve request carries Cache-Control: max-age=0
    prepare: Callable[[int], int] = field(default=lambda run: 0)

    @property
    def origin_url(self) -> str:
        return self.stack.origin.url

    def cache_pids(self) -> list[int]:
        """The processes that serve the nodes: every tier but the origin."""
        return [tier.process.pid for tier in self.stack.tiers if tier.role != "origin"]

    def before_run(self, run: int) -> int:
        """Run control's part before run `run` starts; the number of caches that acknowledged a
        flush (0 when there is no flush)."""
        return self.prepare(run)


@contextmanager
def open_target(
    name: str,
    *,
    node_proxies: int,
    db: str | None,
    globaltag: str,
    work: Path,
    proxy_server: str = "uvicorn",
    redis: str | None = None,
) -> Iterator[Target]:
    """Start target `name` (see TARGETS) on loopback; everything stops when the block ends.
    `redis` (a URL) gives Outpost's site proxy its shared tier."""
    if name not in TARGETS:
        raise ValueError(f"unknown target {name!r}: expected one of {', '.join(TARGETS)}")
    work.mkdir(parents=True, exist_ok=True)
    stack = LocalStack(
        nodes=node_proxies,
        proxies=name == "outpost",
        db=db,
        server=proxy_server,
        redis=redis if name == "outpost" else None,
        state=work / "servers",
    )
    stack.state.mkdir(parents=True, exist_ok=True)
    with stack:
        if name == "outpost":
            yield _outpost(stack)
        elif name == "squid":
            yield _squid(stack, node_proxies, work)
        else:
            yield _nginx_static(stack, globaltag, work)


def _outpost(stack: LocalStack) -> Target:
    def flush_tree(run: int) -> int:
        acked = flush(stack.site.url, run, stack.token)
        if "error" in acked or acked.get("failed"):
            raise LoadTestError(f"flush before run {run} was not acknowledged by all: {acked}")
        return int(acked.get("acked", 0))

    return Target("outpost", stack, [tier.url for tier in stack.node_proxies], prepare=flush_tree)


def _squid(stack: LocalStack, node_proxies: int, work: Path) -> Target:
    squid = find_peer("squid")
    origin_port = int(stack.origin.url.rsplit(":", 1)[1])

    def start(name: str, role: str, parent_port: int) -> int:
        port = free_port()
        conf = prepare_squid(work / name, port=port, parent_port=parent_port, name=name)
        stack.add_peer(name, role, [squid, "-N", "-f", str(conf)], port)
        return port

    site_port = start("squid-site", "site", origin_port)
    nodes = [start(f"squid-node-{k}", "node", site_port) for k in range(1, node_proxies + 1)]
    return Target("squid", stack, [f"http://127.0.0.1:{port}" for port in nodes], soft_refresh=True)


def _nginx_static(stack: LocalStack, globaltag: str, work: Path) -> Target:
    nginx = find_peer("nginx")
    root = work / "static"
    root.mkdir(parents=True)
    copied: set[str] = set()

    def copy(url: str, as_file: str) -> bytes:
        answer = httpx.get(stack.origin.url + url, timeout=60)
        answer.raise_for_status()
        path = root / as_file.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(answer.content)
        return answer.content

    def copy_run(run: int) -> int:
        """The run's resolve answer and any payload not copied yet, before the run starts."""
        query = Resolve(globaltag, run)
        path, _, params = query.url().partition("?")
        resolution = decode_resolution(copy(query.url(), f"{path}/{params}"), query)
        for digest in resolution.payloads:
            url = Payload(digest).url()
            if url not in copied:
                copy(url, url)
                copied.add(url)
        return 0

    port = free_port()
    conf = prepare_nginx_static(work / "nginx", port=port, root=root)
    stack.add_peer("nginx", "node", [nginx, "-p", str(work / "nginx"), "-c", str(conf)], port)
    return Target("nginx-static", stack, [f"http://127.0.0.1:{port}"], prepare=copy_run)
