"""The cache-tree dashboard, in process (`/_outpost/ui/` and its JSON twin `/_outpost/dashboard`):
anyone may look, it shows the proxy, its children with their figures, its flushes with their
laggards, its upstreams, Redis and feed, and never a credential; the sampler fills its ring;
heartbeats carry a child's figures and the registry keeps the last of them, also in SQLite."""

from __future__ import annotations

import asyncio
import re
import sqlite3
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.asgi import AppClient
from support.inprocess import InProcessUpstream
from support.origin import FakeClock
from support.scripted import Answer, ScriptedOrigin

from outpost.localstack import free_port
from proxy.app import ProxyApp, create_app
from proxy.core.history import Figures, parse_figures
from proxy.core.signing import generate_keypair
from proxy.dashboard import PAGE_SIZE, SharedTotals, health
from proxy.settings import ProxySettings
from proxy.tree import Registry, heartbeat

CLOSED = free_port()  # nothing listens there: a child at it fails a flush at once
SIGNING, _ = generate_keypair()
RUN_CONTROL = "rc-secret-token-0001"
REGISTER = "reg-secret-token-0002"
SHARED_KEY = "shared-tier-key-secret-0003"
CREDENTIALS = {
    "upstreams": ("http://cache:upstream-pass-0004@upstream.test",),
    "redis": f"redis://:redis-pass-0005@127.0.0.1:{CLOSED}/0",
    "parent": f"http://me:parent-pass-0006@127.0.0.1:{CLOSED}/?token=parent-query-0007",
    "advertise_url": "http://me:advertise-pass-0008@127.0.0.1:8081/",
    "run_control_token": RUN_CONTROL,
    "register_token": REGISTER,
    "tree_signing_key": SIGNING,
    "shared_tier_key": SHARED_KEY,
}
CHILD_URL = f"http://kid:child-pass-0009@127.0.0.1:{CLOSED}/?token=child-query-0010"
QUERY_SECRETS = ["parent-query-0007", "child-query-0010", "child-pass-0009"]
HOSTILE = '"><script>alert(1)</script>'


@dataclass
class Proxy:
    client: AppClient
    app: ProxyApp
    clock: FakeClock
    origin: ScriptedOrigin

    def register(self, name: str, **extra: Any) -> httpx.Response:
        body = {"name": name, "url": extra.pop("url", CHILD_URL), **extra}
        return self.client.post("/_outpost/register", json=body, headers=bearer(REGISTER))

    def page(self, url: str = "/_outpost/ui/") -> str:
        answer = self.client.get(url)
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"].startswith("text/html")
        return answer.text

    def twin(self, url: str = "/_outpost/dashboard") -> dict[str, Any]:
        answer = self.client.get(url)
        assert answer.status_code == 200, answer.text
        document: dict[str, Any] = answer.json()
        return document


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def make_proxy(**settings: Any) -> tuple[ProxyApp, FakeClock, ScriptedOrigin]:
    origin = ScriptedOrigin()
    origin.script("/a", Answer(200, {"cache-control": "public, max-age=600"}, b"x"))
    settings.setdefault("upstreams", ("http://upstream.test",))
    config = ProxySettings(name="site-1", access_log="off", **settings)
    transport = httpx.ASGITransport(app=origin)  # type: ignore[arg-type]
    clock = FakeClock()
    app = create_app(
        config,
        upstream_client=InProcessUpstream(httpx.AsyncClient(transport=transport)),
        clock=clock,
    )
    return app, clock, origin


@pytest.fixture
def site() -> Iterator[Proxy]:
    """A proxy with every credential a proxy can hold, in every place it can hold one."""
    app, clock, origin = make_proxy(**CREDENTIALS)
    with AppClient(app) as client:
        yield Proxy(client, app, clock, origin)


@pytest.fixture
def plain() -> Iterator[Proxy]:
    app, clock, origin = make_proxy(register_token=REGISTER, run_control_token=RUN_CONTROL)
    with AppClient(app) as client:
        yield Proxy(client, app, clock, origin)


def secrets_of(app: ProxyApp) -> list[str]:
    found = [*app.settings.secrets(), *QUERY_SECRETS]
    assert len(found) >= 10  # every kind above: tokens, keys, passwords in every URL
    return found


def row_of(page: str, name: str) -> str:
    match = re.search(rf'<tr class="child" data-name="{re.escape(name)}">(.*?)</tr>', page, re.S)
    assert match, f"no row for {name}"
    return match.group(1)


def test_anyone_sees_the_proxy_its_epoch_and_a_live_page(plain: Proxy) -> None:
    plain.client.post("/_outpost/flush", json={"run": 7}, headers=bearer(RUN_CONTROL))
    for url in ("/_outpost/ui/", "/_outpost/ui"):
        answer = plain.client.get(url)  # no token
        assert answer.status_code == 200
        assert answer.headers["cache-control"] == "no-store"
        page = answer.text
        assert "<h1>site-1" in page and '<span class="epoch">1</span>' in page
        assert 'data-refresh="2"' in page and 'href="/_outpost/dashboard"' in page
        assert "No child is registered" in page
    twin = plain.client.get("/_outpost/dashboard")
    assert twin.status_code == 200 and twin.headers["cache-control"] == "no-store"
    assert twin.json()["name"] == "site-1" and twin.json()["epoch"] == 1
    assert plain.client.head("/_outpost/ui/").status_code == 200
    assert plain.client.post("/_outpost/ui/").status_code == 405


def test_a_child_that_sends_figures_appears_with_its_plots(plain: Proxy) -> None:
    for beat in range(4):
        figures = {"requests": 100 * beat, "hits": 90 * beat, "epoch": 1}
        assert plain.register("node-7", figures=figures).status_code == 200
        plain.clock.advance(10)
    plain.register("node-8")  # an older child: no figures
    page = plain.page()
    row = row_of(page, "node-7")
    assert 'class="good">ok<' in row and '<td class="num">1</td>' in row
    plots = re.findall(r"<svg.*?</svg>", row, re.S)
    assert len(plots) == 2
    for plot in plots:
        assert ET.fromstring(plot).find("{http://www.w3.org/2000/svg}polyline") is not None
    assert "no figures yet" in row_of(page, "node-8")
    assert f'<a href="http://127.0.0.1:{CLOSED}/_outpost/ui/">node-7</a>' in row  # one down
    twin = plain.twin()
    rows = {r["name"]: r for r in twin["children"]["rows"]}
    assert rows["node-7"]["epoch"] == 1 and rows["node-7"]["requests"] == 300
    assert rows["node-7"]["hits"] == 270 and rows["node-7"]["health"] == "ok"
    # 100 answers a beat of 10 s; the last beat was 10 s ago, so the newest slot is empty
    assert rows["node-7"]["series"]["request_rate"][-4:] == [10.0, 10.0, 10.0, None]
    assert rows["node-7"]["series"]["hit_ratio"][-4:] == [0.9, 0.9, 0.9, None]
    assert rows["node-8"]["series"] is None and rows["node-8"]["epoch"] is None
    assert twin["children"]["health"] == {"ok": 2, "late": 0, "expiring": 0}


@pytest.mark.parametrize(
    "figures",
    [
        {"requests": -1, "hits": 0, "epoch": 0},
        {"requests": 2**70, "hits": 0, "epoch": 0},
        {"requests": HOSTILE, "hits": 0, "epoch": 0},
        {"requests": 10, "hits": 1.5, "epoch": 0},
        {"requests": 10, "hits": 1, "epoch": True},
        {"requests": 1, "hits": 2, "epoch": 0},
        [1, 2, 3],
        HOSTILE,
    ],
    ids=repr,
)
def test_hostile_figures_are_ignored_and_the_child_still_registers(
    plain: Proxy, figures: Any
) -> None:
    answer = plain.register("node-3", figures=figures)
    assert answer.status_code == 200 and answer.json()["figures"].startswith("ignored: ")
    assert answer.json()["epoch"] == 0
    (child,) = plain.app.registry.children()
    assert child.figures is None and plain.app.dashboard.children.ring("node-3") is None
    page = plain.page()
    assert "<script>alert" not in page and "no figures yet" in row_of(page, "node-3")


def test_registration_refuses_a_url_past_its_bound(plain: Proxy) -> None:
    answer = plain.register("node-3", url="http://127.0.0.1:9/" + "x" * 3000)
    assert answer.status_code == 400 and plain.app.registry.children() == []


def test_markup_in_a_child_url_is_shown_as_text(plain: Proxy) -> None:
    assert plain.register("node-4", url=f"http://127.0.0.1:{CLOSED}/{HOSTILE}").status_code == 200
    page = plain.page()
    assert "<script>alert" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_a_flush_is_listed_with_its_acknowledgements_and_its_laggards(site: Proxy) -> None:
    site.register("node-7")
    answer = site.client.post("/_outpost/flush", json={"run": 42}, headers=bearer(RUN_CONTROL))
    assert answer.status_code == 200
    result = answer.json()
    assert result["acked"] == 1 and [f["name"] for f in result["failed"]] == ["node-7"]
    site.clock.advance(30)
    page = site.page()
    (row,) = re.findall(r'<tr class="flush">(.*?)</tr>', page, re.S)
    cells = re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)
    assert cells[0] == "42" and cells[1] == str(result["epoch"]) and cells[3] == "1"
    assert "(30 s ago)" in cells[2]
    assert "1 did not answer" in cells[4] and '<span class="laggard"' in cells[4]
    assert ">node-7</span>" in cells[4]
    (flush,) = site.twin()["flushes"]
    assert flush["run"] == 42 and flush["epoch"] == result["epoch"]
    assert flush["acked"] == 1 and flush["failed"] == 1
    (laggard,) = flush["laggards"]
    assert laggard["name"] == "node-7" and laggard["error"] == result["failed"][0]["error"]
    assert "child-pass" not in laggard["url"] and "***" in laggard["url"]


def test_the_twin_holds_what_the_page_shows(site: Proxy) -> None:
    site.register("node-7", figures={"requests": 5, "hits": 4, "epoch": 0})
    twin, page = site.twin(), site.page()
    assert twin["url"] == "http://me:***@127.0.0.1:8081/" and twin["url"] in page
    assert twin["parent"] is not None and twin["parent"].replace("&", "&amp;") in page
    (upstream,) = twin["upstreams"]
    assert upstream == "http://cache:***@upstream.test" and upstream in page
    assert set(twin["upstreams"][upstream]) == {"up", "consecutive_failures"}
    assert twin["redis"] == {"url": f"redis://:***@127.0.0.1:{CLOSED}/0", "up": True}
    assert twin["redis"]["url"] in page
    assert twin["feed"] is not None and set(twin["feed"]) >= {"position", "behind", "lag_seconds"}
    assert "not subscribed" not in page
    assert twin["cache"]["max_bytes"] == site.app.settings.cache_size
    assert [r["name"] for r in twin["children"]["rows"]] == ["node-7"]
    assert twin["children"]["rows"][0]["url"] in page.replace("&amp;", "&")
    assert twin["children"]["rows"][0]["dashboard"].endswith("/_outpost/ui/")


def test_no_credential_appears_in_the_page_or_the_twin(site: Proxy) -> None:
    site.register("node-7", figures={"requests": 5, "hits": 4, "epoch": 0})
    site.client.post("/_outpost/flush", json={"run": 1}, headers=bearer(RUN_CONTROL))
    site.app.dashboard.sample()
    shown = [
        site.client.get("/_outpost/ui/").text,
        site.client.get("/_outpost/ui").text,
        site.client.get("/_outpost/dashboard").text,
        site.client.get("/_outpost/dashboard?page=2").text,
    ]
    for secret in secrets_of(site.app):
        for text in shown:
            assert secret not in text


def test_children_are_ok_late_or_expiring_by_their_last_heartbeat(plain: Proxy) -> None:
    now = time.time()
    registry = plain.app.registry
    registry.register("node-ok", "http://127.0.0.1:1", now=now - 5)
    registry.register("node-late", "http://127.0.0.1:2", now=now - 30)
    registry.register("node-expiring", "http://127.0.0.1:3", now=now - 400)
    registry.register("node-gone", "http://127.0.0.1:4", now=now - 700)  # past expiry
    twin = plain.twin()
    assert twin["children"]["health"] == {"ok": 1, "late": 1, "expiring": 1}
    assert [c["name"] for c in twin["children"]["unhealthy"]] == ["node-expiring", "node-late"]
    page = plain.page()
    assert 'class="warn">late<' in row_of(page, "node-late")
    assert 'class="bad">expiring<' in row_of(page, "node-expiring")
    assert "node-gone" not in page
    assert health(5, 10, 600) == "ok" and health(21, 10, 600) == "late"
    assert health(301, 10, 600) == "expiring" and health(25, 10, 40) == "expiring"


def test_the_sampler_fills_the_ring(plain: Proxy) -> None:
    plain.client.get("/a")  # a miss
    assert len(plain.app.dashboard.own) >= 1  # the lifespan's sampler took its first sample
    for _ in range(6):
        plain.clock.advance(5)
        for _ in range(5):
            plain.client.get("/a")  # hits
        sample = plain.app.dashboard.sample()
    assert sample.requests == 31 and sample.hits == 30 and sample.cache_bytes
    twin = plain.twin()
    assert len(twin["samples"]) >= 7 and twin["samples"][-1]["requests"] == 31
    assert twin["series"]["step_seconds"] == 5 and len(twin["series"]["request_rate"]) == 120
    assert twin["series"]["request_rate"][-5:] == [1.0] * 5
    assert twin["series"]["hit_ratio"][-5:] == [1.0] * 5
    page = plain.page()
    own = re.search(r'id="request-rate">(.*?)</div>', page, re.S)
    assert own and len(ET.fromstring(re.findall(r"<svg.*?</svg>", own.group(1), re.S)[0]))


def test_two_thousand_children_are_paged_and_answered_fast(plain: Proxy) -> None:
    for index in range(2000):
        url = f"http://10.1.{index // 250}.{index % 250}"
        plain.app.registry.register(f"node-{index:04d}", url)
    for beat in range(60):
        for index in range(0, 2000, 10):
            plain.app.dashboard.heard(f"node-{index:04d}", Figures(beat * 100, beat * 50, 1))
        plain.clock.advance(10)
    started = time.perf_counter()
    page = plain.page()
    elapsed = time.perf_counter() - started
    assert elapsed < 1.0, f"{elapsed:.3f} s"
    assert page.count('<tr class="child"') == PAGE_SIZE and "Page 1 of 20" in page
    assert page.count("<svg") == 2 + 2 * PAGE_SIZE // 10
    last = plain.twin("/_outpost/dashboard?page=20")["children"]
    assert last["page"] == 20 and last["rows"][-1]["name"] == "node-1999"
    assert plain.twin("/_outpost/dashboard?page=99")["children"]["page"] == 20  # the last
    for bad in ("0", "x", "-1", "1" * 5000):
        answer = plain.client.get(f"/_outpost/ui/?page={bad}")
        assert answer.status_code == 400 and answer.json()["error"] == "bad request"


def test_a_heartbeat_carries_the_childs_figures_to_its_parent() -> None:
    parent, _, _ = make_proxy(register_token=REGISTER)
    epochs: list[object] = []

    async def beat() -> None:
        transport = httpx.ASGITransport(app=parent)  # type: ignore[arg-type]
        me = {"name": "node-3", "url": "http://127.0.0.1:9"}
        async with heartbeat(
            "http://parent.test",
            me,
            REGISTER,
            0.01,
            epochs.append,
            figures=lambda: Figures(10, 7, 2),
            transport=transport,
        ):
            for _ in range(500):
                await asyncio.sleep(0.01)
                if len(epochs) >= 2:
                    return

    asyncio.run(beat())
    (child,) = parent.registry.children()
    assert child.figures == Figures(10, 7, 2) and epochs[0] == 0
    ring = parent.dashboard.children.ring("node-3")
    assert ring is not None and ring.latest() is not None


def test_a_proxy_reports_its_own_totals_in_its_heartbeat(plain: Proxy) -> None:
    plain.client.get("/a")
    plain.client.get("/a")
    plain.client.post("/_outpost/flush", json={"run": 3}, headers=bearer(RUN_CONTROL))
    assert plain.app.dashboard.figures() == Figures(2, 1, 1)


def test_the_subtree_counts_every_cache_below_as_the_childrens_heartbeats_report(
    plain: Proxy,
) -> None:
    """A central proxy sees how many caches each site holds below it, and the whole tree."""
    site_figures = {"requests": 10, "hits": 9, "epoch": 1, "caches": 501, "unhealthy": 2}
    assert plain.register("site-a", figures=site_figures).status_code == 200
    assert plain.register("site-b", url="http://site-b:8081").status_code == 200  # no figures
    assert plain.app.dashboard.figures().caches == 503  # what its own heartbeat reports up
    twin = plain.twin()
    assert twin["subtree"] == {"caches": 503, "unhealthy": 2}
    rows = {row["name"]: row for row in twin["children"]["rows"]}
    assert (rows["site-a"]["caches"], rows["site-a"]["unhealthy"]) == (501, 2)
    assert (rows["site-b"]["caches"], rows["site-b"]["unhealthy"]) == (1, 0)
    page = plain.page()
    assert "<strong>503</strong> caches" in page and "2 late or expiring" in page
    quiet = time.time() - 3 * plain.app.settings.heartbeat_seconds  # both go quiet: late
    registry = plain.app.registry
    registry.register("site-a", CHILD_URL, now=quiet, figures=parse_figures(site_figures))
    registry.register("site-b", "http://site-b:8081", now=quiet)
    assert plain.twin()["subtree"] == {"caches": 503, "unhealthy": 4}


def test_the_shared_registry_keeps_a_childs_last_figures(tmp_path: Path) -> None:
    path = tmp_path / "children.sqlite"
    with sqlite3.connect(path) as old:  # a state directory from before the figures
        old.execute("CREATE TABLE children (name TEXT PRIMARY KEY, url TEXT, seen REAL)")
        old.execute("INSERT INTO children VALUES ('node-1', 'http://a', ?)", (time.time(),))
    first, second = Registry(path), Registry(path)  # two worker processes
    try:
        assert first.children()[0].figures is None
        first.register("node-2", "http://b", figures=Figures(10, 5, 3, caches=7, unhealthy=1))
        second.register("node-1", "http://a", figures=Figures(1, 1, 1))
        found = {c.name: c.figures for c in second.children()}
        assert found == {"node-1": Figures(1, 1, 1), "node-2": Figures(10, 5, 3, 7, 1)}
        first.register("node-2", "http://b")  # a heartbeat without figures
        assert {c.name: c.figures for c in first.children()}["node-2"] is None
    finally:
        first.close()
        second.close()


def test_workers_sum_their_totals_in_the_state_directory(tmp_path: Path) -> None:
    one = SharedTotals(tmp_path / "totals.sqlite", fresh_seconds=30)
    two = SharedTotals(tmp_path / "totals.sqlite", fresh_seconds=30)
    two.worker = one.worker + 1
    try:
        now = time.time()
        assert one.sum(10, 5, now) == (10, 5)
        assert two.sum(20, 10, now) == (30, 15)
        assert one.sum(11, 6, now + 1) == (31, 16)
        assert one.sum(12, 6, now + 40) == (12, 6)  # the other stopped publishing: dropped
    finally:
        one.close()
        two.close()
    assert SharedTotals(None, 30).sum(3, 2, 0) == (3, 2)
