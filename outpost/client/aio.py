"""The asyncio farm-node client: `AsyncClient(servers=[...], proxies=[...])`.

The same decisions as the blocking `Client` (they live in `walk` and `answers`); this driver
awaits the GETs and the back-off, and `fetch_run` runs `settings.concurrency` payload workers.
"""

from __future__ import annotations

import asyncio
import functools
import random
import time as _time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
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

__all__ = ["AsyncClient"]

T = TypeVar("T")


class AsyncClient(ClientBase):
    """Resolve global tags and fetch payloads through proxies, then servers, with failover."""

    def __init__(
        self,
        servers: Endpoints = (),
        proxies: Endpoints = (),
        *,
        settings: ClientSettings | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = _time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        super().__init__(servers, proxies, settings=settings, clock=clock, rng=rng)
        self._sleep = sleep
        self._http = httpx.AsyncClient(transport=transport, **http_options(self.settings))

    async def resolve(
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
        return await self._get(query.url(), lambda body: decode_resolution(body, query))

    async def run_record(self, run: int) -> RunRecord:
        """The run record of `run` (`GET /v1/runs/R`), as run control wrote it."""
        query = run_query(run)
        return await self._get(query.url(), lambda body: decode_run_record(body, query))

    async def payload(self, digest: str, *, named: bool = False) -> bytes:
        """The bytes whose SHA-256 is `digest`, verified. `named`: a resolve answer named it, so
        it exists, and an endpoint answering 404 is behind (or wrong): the next one is asked."""
        query = payload_query(digest)
        return await self._get(
            query.url(), lambda body: verify_payload(query.hash, body), must_exist=named
        )

    async def fetch_run(
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
        resolution = await self.resolve(globaltag, run, lumi, time=time, snapshot=snapshot)
        if expect is not None:
            check_conditions(resolution, expect)
        digests = iter(resolution.payloads)
        fetched: dict[str, bytes] = {}

        async def worker() -> None:
            for digest in digests:  # one shared iterator: each digest goes to one worker
                fetched[digest] = await self.payload(digest, named=True)

        workers = min(self.settings.concurrency, len(resolution.payloads))
        try:
            async with asyncio.TaskGroup() as group:
                for _ in range(workers):
                    group.create_task(worker())
        except BaseExceptionGroup as failures:  # the first failure, as `payload` raised it
            raise failures.exceptions[0] from None
        return RunConditions(resolution, {d: fetched[d] for d in resolution.payloads})

    async def feed_head(self) -> int:
        """The change feed's newest position, as the first endpoint that answers knows it."""
        query = feed_query(0, 0, self.settings.timeout, limit=1)
        return await self._get(query.url(), lambda body: decode_page(body, 0).head)

    async def follow(
        self, *, tags: Sequence[str] = (), after: int | None = None, wait: float = 25.0
    ) -> AsyncIterator[NewObject]:
        """`Client.follow` for asyncio."""
        position = await self.feed_head() if after is None else after
        while True:
            query = feed_query(position, wait, self.settings.timeout)
            try:
                page = await self._get(
                    query.url(), functools.partial(decode_page, after=query.after)
                )
            except RequestRejected as rejected:
                if rejected.status != 409:
                    raise
                position = await self.feed_head()
                continue
            for iov in new_iovs(page, tags):
                yield NewObject(iov, await self.payload(iov.payload, named=True))
            if page.entries:
                position = page.entries[-1].seq

    async def _get(self, path: str, decode: Callable[[bytes], T], *, must_exist: bool = False) -> T:
        walk = self.failover.walk(path, must_exist=must_exist)
        while True:
            step = walk.next(self.clock())
            if isinstance(step, Wait):
                await self._sleep(step.seconds)
                continue
            try:
                response = await self._http.get(step.endpoint.url + path)
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

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()
