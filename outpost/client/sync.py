"""The blocking farm-node client: `Client(servers=[...], proxies=[...])`.

A thin driver: `walk` decides which endpoint to try and what an answer means, this module does
the GETs (httpx) and the sleeping. `fetch_run` fetches payloads in a small thread pool.
"""

from __future__ import annotations

import functools
import random
import threading
import time as _time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from types import TracebackType
from typing import TypeVar

import httpx

from outpost.client.answers import (
    Resolution,
    RunConditions,
    RunRecord,
    check_conditions,
    decode_resolution,
    decode_run_record,
    payload_query,
    resolve_query,
    run_query,
    verify_payload,
)
from outpost.client.base import ClientBase, Endpoints, http_options, transport_failure
from outpost.client.errors import RequestRejected
from outpost.client.feed import NewObject, decode_page, feed_query, new_iovs
from outpost.client.settings import ClientSettings
from outpost.client.walk import Wait

__all__ = ["Client"]

T = TypeVar("T")


class Client(ClientBase):
    """Resolve global tags and fetch payloads through proxies, then servers, with failover."""

    def __init__(
        self,
        servers: Endpoints = (),
        proxies: Endpoints = (),
        *,
        settings: ClientSettings | None = None,
        transport: httpx.BaseTransport | None = None,
        clock: Callable[[], float] = _time.monotonic,
        sleep: Callable[[float], None] = _time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        super().__init__(servers, proxies, settings=settings, clock=clock, rng=rng)
        self.failover.lock = threading.Lock()
        self._sleep = sleep
        self._http = httpx.Client(transport=transport, **http_options(self.settings))

    def resolve(
        self,
        globaltag: str,
        run: int,
        lumi: int | None = None,
        *,
        time: int | None = None,
        snapshot: int | None = None,
    ) -> Resolution:
        """Every record of `globaltag` for (`run`, `lumi`; default the first lumi section)."""
        query = resolve_query(globaltag, run, lumi, time=time, snapshot=snapshot)
        return self._get(query.url(), lambda body: decode_resolution(body, query))

    def run_record(self, run: int) -> RunRecord:
        """The run record of `run` (`GET /v1/runs/R`), as run control wrote it."""
        query = run_query(run)
        return self._get(query.url(), lambda body: decode_run_record(body, query))

    def payload(self, digest: str, *, named: bool = False) -> bytes:
        """The bytes whose SHA-256 is `digest`, verified. `named`: a resolve answer named it, so
        it exists, and an endpoint answering 404 is behind (or wrong): the next one is asked."""
        query = payload_query(digest)
        return self._get(
            query.url(), lambda body: verify_payload(query.hash, body), must_exist=named
        )

    def fetch_run(
        self,
        globaltag: str,
        run: int,
        lumi: int | None = None,
        *,
        time: int | None = None,
        snapshot: int | None = None,
        expect: RunRecord | None = None,
    ) -> RunConditions:
        """`resolve`, then every payload it names, `settings.concurrency` at a time. With
        `expect` (`run_record(run)`), `ConditionsMismatch` names every record that differs
        from the run record before any payload is fetched."""
        resolution = self.resolve(globaltag, run, lumi, time=time, snapshot=snapshot)
        if expect is not None:
            check_conditions(resolution, expect)
        digests = resolution.payloads
        if not digests:
            return RunConditions(resolution, {})
        workers = min(self.settings.concurrency, len(digests))
        with ThreadPoolExecutor(workers, thread_name_prefix="outpost-fetch") as pool:
            futures: dict[str, Future[bytes]] = {
                d: pool.submit(self.payload, d, named=True) for d in digests
            }
            try:
                for future in as_completed(futures.values()):
                    future.result()
            except BaseException:
                for future in futures.values():
                    future.cancel()
                raise
        return RunConditions(resolution, {d: futures[d].result() for d in digests})

    def feed_head(self) -> int:
        """The change feed's newest position, as the first endpoint that answers knows it."""
        return self._get(feed_query(0, 0, self.settings.timeout, limit=1).url(), _head)

    def follow(
        self, *, tags: Sequence[str] = (), after: int | None = None, wait: float = 25.0
    ) -> Iterator[NewObject]:
        """Every IOV the tags matching `tags` (globs; all without) gain after feed position
        `after` (default: from now on), in feed order, with its payload's verified bytes; it
        never ends. The feed is long-polled (`wait` seconds at most) through the proxies, then
        the servers, as every read is: when the node proxy is down, the next endpoint answers
        from the same position. A position the feed does not have (a database restored from
        an older copy) starts again from its head."""
        position = self.feed_head() if after is None else after
        while True:
            query = feed_query(position, wait, self.settings.timeout)
            try:
                page = self._get(query.url(), functools.partial(decode_page, after=query.after))
            except RequestRejected as rejected:
                if rejected.status != 409:
                    raise
                position = self.feed_head()
                continue
            for iov in new_iovs(page, tags):
                yield NewObject(iov, self.payload(iov.payload, named=True))
            if page.entries:
                position = page.entries[-1].seq

    def _get(self, path: str, decode: Callable[[bytes], T], *, must_exist: bool = False) -> T:
        walk = self.failover.walk(path, must_exist=must_exist)
        while True:
            step = walk.next(self.clock())
            if isinstance(step, Wait):
                self._sleep(step.seconds)
                continue
            try:
                response = self._http.get(step.endpoint.url + path)
            except httpx.RequestError as exc:
                walk.failed(step.endpoint, *transport_failure(exc), self.clock())
                continue
            value = walk.answered(
                step.endpoint, response.status_code, response.content, decode, self.clock()
            )
            if value is not None:
                return value

    @property
    def closed(self) -> bool:
        return self._http.is_closed

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def _head(body: bytes) -> int:
    return decode_page(body, 0).head
