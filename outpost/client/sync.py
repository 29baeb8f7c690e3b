"""The blocking farm-node client: `Client(servers=[...], proxies=[...])`.

A thin driver: `walk` decides which endpoint to try and what an answer means, this module does
the GETs (httpx) and the sleeping. `fetch_run` fetches payloads in a small thread pool.
"""

from __future__ import annotations

import random
import threading
import time as _time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from types import TracebackType
from typing import TypeVar

import httpx

from outpost.client.answers import (
    Resolution,
    RunConditions,
    decode_resolution,
    payload_query,
    resolve_query,
    verify_payload,
)
from outpost.client.base import ClientBase, Endpoints, http_options, transport_failure
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
    ) -> RunConditions:
        """`resolve`, then every payload it names, `settings.concurrency` at a time."""
        resolution = self.resolve(globaltag, run, lumi, time=time, snapshot=snapshot)
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
