"""Frontier requests through the two caches a site can put between its clients and Outpost's
origin: Debian's squid as a forward proxy (what frontier-squid is) and `outpost proxy` in
forward mode. Real processes on loopback; requests built as frontier_client builds them (HTTP/1.0,
the absolute URL in the request line, `Host` without the port, `X-Frontier-Id`, `max-stale=1`).

Both caches must store the answer and revalidate it with If-Modified-Since on the client's soft
refresh (`Cache-Control: max-stale=1,max-age=0`: the origin answers 304 and the stored body is
served). On the hard refresh (`Pragma: no-cache` beside that Cache-Control) they differ: `outpost
proxy` fetches the answer again, as frontier_client means it; squid follows RFC 9111 §5.4, which
ignores Pragma when Cache-Control is present, and serves its copy.
"""

from __future__ import annotations

import contextlib
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from support.fnkit import frontier_url, parse_answer
from support.frontier_wire import Answer, FrontierClient
from support.servers import free_port, run_process
from support.stack import Server, Stack

from loadtest.peers import prepare_squid

QUERY = "SELECT tag_name, since, payload_hash FROM iovs ORDER BY tag_name, since"
CACHES = ["squid", "outpost"]


@contextlib.contextmanager
def squid_forward_proxy(work: Path) -> Iterator[int]:
    """Debian's squid as a forward proxy on a free port, allowed to reach 127.0.0.1 only."""
    binary = shutil.which("squid") or "/usr/sbin/squid"
    port = free_port()
    conf = prepare_squid(work / "squid", port=port, parent_port=None)
    with run_process([binary, "-N", "-f", str(conf)], work / "squid.log") as process:
        deadline = time.monotonic() + 30
        while True:  # squid answers its own error page to an origin-form request once it listens
            assert process.poll() is None, (work / "squid.log").read_text()[-2000:]
            with contextlib.suppress(httpx.TransportError):
                httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
                break
            assert time.monotonic() < deadline, "squid did not start listening in 30 s"
            time.sleep(0.2)
        yield port


def settled_origin(stack: Stack, db: str, monkeypatch: pytest.MonkeyPatch) -> Server:
    """An origin that offers Last-Modified (its settle time over) on the first answer."""
    monkeypatch.setenv("OUTPOST_ORIGIN_SNAPSHOT_SETTLE_SECONDS", "0")
    origin = stack.origin(db)
    deadline = time.monotonic() + 10
    while "last-modified" not in httpx.get(origin.url + frontier_url(QUERY), timeout=5).headers:
        assert time.monotonic() < deadline, "the origin never offered Last-Modified"
        time.sleep(0.2)
    return origin


def frontier_answers(origin: Server, status: int) -> float:
    """How many Frontier GETs the origin answered with `status`."""
    labels = {"route": "/Frontier", "method": "GET", "status": str(status)}
    return origin.metric("outpost_origin_requests_total", **labels)


def served_from_cache(cache: str, answer: Answer) -> bool:
    if cache == "squid":
        return answer.headers["x-cache"].startswith("HIT")
    return "; hit" in answer.headers["cache-status"]


@pytest.mark.parametrize("cache", CACHES)
def test_frontier_answers_are_cached_and_revalidated_by_squid_and_outpost_proxy(
    stack: Stack, sample_sqlite: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cache: str
) -> None:
    origin = settled_origin(stack, sample_sqlite, monkeypatch)
    origin_port = origin.url.rsplit(":", 1)[1]
    with contextlib.ExitStack() as started:
        if cache == "squid":
            port = started.enter_context(squid_forward_proxy(tmp_path))
        else:
            proxy = stack.proxy(
                "site",
                [origin.url],
                env={"OUTPOST_PROXY_FORWARD_DESTINATIONS": f"127.0.0.1:{origin_port}"},
            )
            port = int(proxy.url.rsplit(":", 1)[1])
        target = f"http://127.0.0.1:{origin_port}" + frontier_url(QUERY)
        direct_200s = frontier_answers(origin, 200)  # the settle probes above

        with FrontierClient(port) as client:
            first = client.get(target, "127.0.0.1")
            second = client.get(target, "127.0.0.1")
            assert frontier_answers(origin, 200) == direct_200s + 1
            # frontier_client's soft refresh (forcereload=short): one header, as fn-htclient.c
            soft = client.get(target, "127.0.0.1", cache_control="max-stale=1,max-age=0")
            assert frontier_answers(origin, 304) == 1
            assert frontier_answers(origin, 200) == direct_200s + 1
            # its hard refresh (forcereload=long): `Pragma: no-cache` beside the Cache-Control
            hard = client.get(target, "127.0.0.1", extra="Pragma: no-cache\r\n")
            refetched = frontier_answers(origin, 200) == direct_200s + 2

    for answer in (first, second, soft, hard):
        assert answer.status == 200
        assert answer.headers["content-length"] == str(len(answer.body))
        assert answer.body == first.body
    (payload,) = parse_answer(first.body).payloads
    assert payload.error == 0 and len(payload.rows) > 10
    assert [name for name, _ in payload.columns] == ["tag_name", "since", "payload_hash"]
    assert first.headers["last-modified"] == soft.headers["last-modified"]
    assert not served_from_cache(cache, first)
    assert served_from_cache(cache, second)
    if cache == "outpost":
        assert refetched and not served_from_cache(cache, hard)
    else:  # squid ignores Pragma when Cache-Control is present (RFC 9111 §5.4): still a hit
        assert not refetched and served_from_cache(cache, hard)
