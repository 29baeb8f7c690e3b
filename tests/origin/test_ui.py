"""The conditions browser (`/ui/`): every page answers with the read path's own content and
caching headers, links its JSON twin and canonical URLs only, and answers bad input with an HTML
error page of the read API's status that never reflects markup.

Over a private SQLite copy of the sample, with a hand-moved clock (the read-API half of the same
queries runs on both backends in test_browse_reads.py).
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from html import escape
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from support.asgi import AppClient
from support.origin import TOKENS, FakeClock, MakeClient, admin, writer

from origin import ui
from origin.metrics import route_label
from origin.sample import HLT_GLOBAL_TAG, PROMPT_GLOBAL_TAG
from origin.uiview import format_key, hexdump
from outpost.conditions import conditions_digest
from outpost.urls import canonical, format_time

NOW = 1_800_000_000_000_000  # after every row of the sample
SHORT = "public, max-age=120"
LONG = "public, max-age=3600"
FOREVER = "public, max-age=31536000, immutable"
RUN_CONTROL_TOKEN = "run-control-token"
RUN = 500


@pytest.fixture
def tokens_file(tmp_path: Path) -> Path:
    path = tmp_path / "tokens.toml"
    path.write_text(
        f'{TOKENS}\n[[token]]\nname = "run-control"\nrole = "runcontrol"\n'
        f'token = "{RUN_CONTROL_TOKEN}"\n'
    )
    return path


@pytest.fixture
def origin(sample_sqlite: str, make_client: MakeClient) -> AppClient:
    return make_client(
        sample_sqlite, clock=FakeClock(NOW), ttl_short_seconds=120, ttl_long_seconds=3600
    )


# --- reading pages ---------------------------------------------------------------------------


@dataclass
class Table:
    header: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    classes: list[str] = field(default_factory=list)  # each row's class attribute


@dataclass
class Page(HTMLParser):
    """What a test reads off a page: its links, twin, forms, tables (cells' text), preview."""

    links: list[str] = field(default_factory=list)
    alternate: list[str] = field(default_factory=list)
    forms: list[tuple[str, list[str]]] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    preview: str = ""
    _cell: list[str] | None = None
    _row: list[str] | None = None
    _row_class: str = ""
    _header: bool = False
    _in_pre: bool = False

    def __post_init__(self) -> None:
        super().__init__()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "a" and found.get("href"):
            self.links.append(str(found["href"]))
        elif tag == "link" and found.get("rel") == "alternate":
            self.alternate.append(str(found["href"]))
        elif tag == "form":
            self.forms.append((str(found.get("action")), []))
        elif tag == "input" and self.forms:
            self.forms[-1][1].append(str(found.get("name")))
        elif tag == "table":
            self.tables.append(Table())
        elif tag == "tr":
            self._row, self._row_class, self._header = [], found.get("class") or "", True
        elif tag in ("td", "th"):
            self._cell = []
            self._header = self._header and tag == "th"
        elif tag == "pre":
            self._in_pre = True

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self._row is not None and self.tables:
            table = self.tables[-1]
            if self._header and not table.header and not table.rows:
                table.header = self._row
            else:
                table.rows.append(self._row)
                table.classes.append(self._row_class)
            self._row = None
        elif tag == "pre":
            self._in_pre = False

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)
        if self._in_pre:
            self.preview += data


def read(
    client: AppClient, url: str, status: int = 200, **kwargs: Any
) -> tuple[httpx.Response, Page]:
    answer = client.get(url, **kwargs)
    assert answer.status_code == status, answer.text[:2000]
    assert answer.headers["content-type"] == "text/html; charset=utf-8"
    page = Page()
    page.feed(answer.text)
    return answer, page


def twin_of(client: AppClient, url: str) -> tuple[str, Any]:
    """A page's twin (its `<link rel=alternate>`, also linked in the page) and its JSON."""
    _, page = read(client, url)
    (twin,) = page.alternate
    assert twin in page.links
    answer = client.get(twin)
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/json"
    return twin, answer.json()


def table(page: Page, first: str, nth: int = 0) -> Table:
    """The `nth` table of the page whose first column is headed `first`."""
    return [t for t in page.tables if t.header[:1] == [first]][nth]


# --- the sample's facts ------------------------------------------------------------------------


def hlt_map(client: AppClient) -> dict[str, str]:
    document = client.get(f"/v1/globaltags/{HLT_GLOBAL_TAG}").json()
    return {e["record"]: e["tag"] for e in document["map"]}


def records(client: AppClient, run: int = RUN) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = client.get(f"/v1/resolve/{HLT_GLOBAL_TAG}?run={run}").json()[
        "records"
    ]
    return found


def write_run_record(client: AppClient, run: int = RUN) -> dict[str, Any]:
    body = {
        "globaltag": HLT_GLOBAL_TAG,
        "digest": conditions_digest(records(client, run)),
        "attestation": {"caches": 3, "agree": 3, "differ": [], "failed": []},
    }
    answer = client.post(f"/v1/runs/{run}", json=body, headers=writer(RUN_CONTROL_TOKEN))
    assert answer.status_code == 201, answer.text
    document: dict[str, Any] = answer.json()
    return document


def corrected_tag(client: AppClient) -> tuple[str, list[dict[str, Any]]]:
    """A tag of the sample with corrections, and its history."""
    for tag in sorted(hlt_map(client).values()):
        history = client.get(f"/v1/tags/{tag}/history").json()["history"]
        keys = [
            (i["channel"], i["since"]) for e in history if e["kind"] == "iovs" for i in e["iovs"]
        ]
        if len(keys) != len(set(keys)):
            return tag, history
    raise AssertionError("the sample has corrections")


# --- every page --------------------------------------------------------------------------------


def pages(client: AppClient) -> dict[str, str]:
    """Every kind of page → one URL of it over the sample (and a run record)."""
    write_run_record(client)
    payload = records(client)[0]["payload"]
    return {
        "globaltags": "/ui/",
        "globaltag": f"/ui/globaltags/{HLT_GLOBAL_TAG}",
        "diff": f"/ui/diff?a={HLT_GLOBAL_TAG}&b={PROMPT_GLOBAL_TAG}",
        "tags": "/ui/tags",
        "tag": f"/ui/tags/{hlt_map(client)['EcalPedestalsRcd']}",
        "resolve": f"/ui/resolve/{HLT_GLOBAL_TAG}?run={RUN}",
        "payload": f"/ui/payloads/{payload}",
        "runs": "/ui/runs",
        "run": f"/ui/runs/{RUN}",
    }


TWINS = {
    "globaltags": "/v1/globaltags",
    "globaltag": f"/v1/globaltags/{HLT_GLOBAL_TAG}",
    "diff": f"/v1/diff/globaltags?a={HLT_GLOBAL_TAG}&b={PROMPT_GLOBAL_TAG}",
    "tags": "/v1/tags",
    "tag": "/v1/tags/{tag}/iovs?until=2147483648",  # a run tag: every run
    "resolve": f"/v1/resolve/{HLT_GLOBAL_TAG}?run={RUN}",
    "payload": "/v1/payloads/{payload}/info",
    "runs": "/v1/runs",
    "run": f"/v1/runs/{RUN}",
}


def test_every_page_answers_with_its_twin_linked_and_no_script(origin: AppClient) -> None:
    for kind, url in pages(origin).items():
        answer, page = read(origin, url)
        twin, _ = twin_of(origin, url)
        expected = TWINS[kind].format(tag=url.rpartition("/")[2], payload=url.rpartition("/")[2])
        assert twin == expected, kind
        assert f'<a class="twin" href="{escape(twin)}">' in answer.text
        assert "<script" not in answer.text, kind
        assert page.links[:3] == ["/ui/", "/ui/", "/ui/tags"], kind  # brand and navigation
        assert "/ui/runs" in page.links


def test_every_link_is_a_canonical_url_and_every_page_it_reaches_answers(
    origin: AppClient,
) -> None:
    """A crawl from the global tags: every `/v1/` link is its own canonical spelling, every
    `/ui/` link a page that answers 200, with the twin of its own canonical spelling."""
    write_run_record(origin)
    seen: set[str] = set()
    queue = ["/ui/", "/ui/runs", "/ui/tags"]
    while queue and len(seen) < 400:
        url = queue.pop(0)
        if url in seen:
            continue
        seen.add(url)
        _, page = read(origin, url)
        for link in page.links:
            path, _, query = link.partition("?")
            assert urlsplit(link).netloc == "", link
            if path.startswith("/v1/"):
                assert canonical(path, query) == link, link
            else:
                assert path.startswith("/ui/"), link
                if link not in seen:
                    queue.append(link)
    assert len(seen) > 50  # pages of global tags, tags, payloads, diffs, resolves, runs
    assert any(u.startswith("/ui/payloads/") for u in seen)
    assert any(u.startswith("/ui/diff?") for u in seen)
    assert any(u.startswith("/ui/resolve/") for u in seen)


def test_head_answers_like_get_without_a_body(origin: AppClient) -> None:
    for url in pages(origin).values():
        got, head = origin.get(url), origin.head(url)
        assert head.status_code == 200 and head.content == b""
        assert head.headers["content-length"] == str(len(got.content))
        for name in ("cache-control", "etag", "content-type"):
            assert head.headers[name] == got.headers[name]


def test_a_page_the_client_holds_is_answered_not_modified(origin: AppClient) -> None:
    url = f"/ui/globaltags/{HLT_GLOBAL_TAG}"
    first = origin.get(url)
    again = origin.get(url, headers={"if-none-match": first.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    assert again.headers["cache-control"] == SHORT
    assert origin.get(url, headers={"if-none-match": '"other"'}).status_code == 200


def test_the_ui_has_one_metrics_label() -> None:
    assert route_label("/ui/tags/X") == route_label("/ui/") == route_label("/ui") == "/ui"
    assert route_label("/v1/diff/globaltags") == "/v1/diff"


# --- caching headers ---------------------------------------------------------------------------


def test_each_page_carries_the_ttl_class_of_what_it_shows(origin: AppClient) -> None:
    urls = pages(origin)
    prompt_tag = next(
        e["tag"] for e in origin.get(f"/v1/globaltags/{PROMPT_GLOBAL_TAG}").json()["map"]
    )
    settled = "2026-06-01T00:00:00Z"
    expected = {
        urls["globaltags"]: SHORT,
        urls["globaltag"]: SHORT,  # open
        f"/ui/globaltags/{PROMPT_GLOBAL_TAG}": LONG,  # locked, with its history
        urls["diff"]: SHORT,
        f"/ui/diff?a={HLT_GLOBAL_TAG}&a_snapshot=2026-01-01T00:00:00Z&b={HLT_GLOBAL_TAG}"
        f"&b_snapshot={settled}": FOREVER,
        f"/ui/diff?a={HLT_GLOBAL_TAG}&a_snapshot={settled}&b={HLT_GLOBAL_TAG}": SHORT,
        urls["tags"]: SHORT,
        urls["tag"]: SHORT,  # open
        f"/ui/tags/{prompt_tag}": LONG,  # locked: metadata, IOVs and history
        urls["resolve"]: SHORT,
        f"/ui/resolve/{HLT_GLOBAL_TAG}?run={RUN}&snapshot={settled}": FOREVER,
        f"/ui/resolve/{PROMPT_GLOBAL_TAG}?run={RUN}": LONG,
        urls["payload"]: FOREVER,
        urls["runs"]: SHORT,
        urls["run"]: FOREVER,
    }
    for url, cache_control in expected.items():
        answer, _ = read(origin, url)
        assert answer.headers["cache-control"] == cache_control, url


# --- errors ------------------------------------------------------------------------------------

ERRORS = [
    # (url, status, what the page says)
    ("/ui/globaltags/NOPE", 404, "global tag &#39;NOPE&#39; does not exist"),
    ("/ui/tags/NOPE_v1", 404, "tag &#39;NOPE_v1&#39; does not exist"),
    (f"/ui/payloads/{'0' * 64}", 404, f"payload {'0' * 64} does not exist"),
    ("/ui/payloads/xyz", 400, "&#39;xyz&#39; is not a SHA-256 hash"),
    (f"/ui/resolve/{HLT_GLOBAL_TAG}", 400, "resolve needs run=R"),
    (f"/ui/resolve/{HLT_GLOBAL_TAG}?run=five", 400, "run=&#39;five&#39; is not an integer"),
    (f"/ui/resolve/{HLT_GLOBAL_TAG}?run=1&snapshot=soon", 400, "is not a time"),
    ("/ui/resolve/NOPE?run=1", 404, "global tag &#39;NOPE&#39; does not exist"),
    (f"/ui/diff?a={HLT_GLOBAL_TAG}", 400, "a diff needs a=GT and b=GT"),
    (f"/ui/diff?a={HLT_GLOBAL_TAG}&b=GONE", 404, "global tag &#39;GONE&#39; does not exist"),
    ("/ui/tags?name=a%25b", 400, "is not a name glob"),
    ("/ui/tags?colour=red", 400, "unknown parameter &#39;colour&#39;"),
    ("/ui/?q=a%20b", 400, "q=&#39;a b&#39; is not a name glob"),
    ("/ui/runs/5", 404, "run 5 has no record"),
    ("/ui/runs/-5", 400, "is not an integer"),
    ("/ui/runs?limit=0", 400, "limit=0 is out of range"),
    ("/ui/nowhere", 404, "no page &#39;/ui/nowhere&#39;"),
    (f"/ui/globaltags/{HLT_GLOBAL_TAG}?run=1", 400, "unknown parameter &#39;run&#39;"),
]


@pytest.mark.parametrize(("url", "status", "says"), ERRORS)
def test_bad_input_is_an_html_error_page_saying_what_was_wrong(
    origin: AppClient, url: str, status: int, says: str
) -> None:
    answer = origin.get(url)
    assert answer.status_code == status
    assert answer.headers["content-type"] == "text/html; charset=utf-8"
    assert answer.headers["cache-control"] == "no-store"
    assert "etag" not in answer.headers
    assert says in answer.text
    assert f"<h1>{status} · " in answer.text


HOSTILE = [
    "/ui/tags/%3Cscript%3Ealert(1)%3C%2Fscript%3E",
    "/ui/tags/%3Cscript%3Ealert(1)",
    "/ui/globaltags/%3Cscript%3E",
    "/ui/resolve/%3Cscript%3E?run=1",
    "/ui/payloads/%3Cscript%3E",
    "/ui/runs/%3Cscript%3E",
    "/ui/?q=%3Cscript%3E",
    "/ui/tags?name=%3Cscript%3E",
    "/ui/tags?payload_type=%3Cscript%3E",
    "/ui/diff?a=%3Cscript%3E&b=X",
    f"/ui/diff?a={HLT_GLOBAL_TAG}&b={HLT_GLOBAL_TAG}&a_snapshot=%3Cscript%3E",
    "/ui/tags?%3Cscript%3E=1",
    "/ui/%3Cscript%3E",
    "/ui/tags/%22%3E%3Cimg%20src=x%20onerror=alert(1)%3E",
]


@pytest.mark.parametrize("url", HOSTILE)
def test_markup_in_a_url_is_a_4xx_and_never_reflected(origin: AppClient, url: str) -> None:
    answer = origin.get(url)
    assert answer.status_code in (400, 404), answer.text
    assert answer.headers["cache-control"] == "no-store"
    assert "<script" not in answer.text and "<img" not in answer.text
    assert "&lt;" in answer.text  # reflected, escaped


# --- the pages' content ------------------------------------------------------------------------


def test_the_global_tags_page_lists_its_twin_and_searches_by_glob(origin: AppClient) -> None:
    _, document = twin_of(origin, "/ui/")
    _, page = read(origin, "/ui/")
    names = [row[0] for row in table(page, "name").rows]
    assert names == [g["name"] for g in document["globaltags"]]
    for g in document["globaltags"]:
        assert f"/ui/globaltags/{g['name']}" in page.links
    _, page = read(origin, "/ui/?q=*PROMPT*")
    assert [row[0] for row in table(page, "name").rows] == [PROMPT_GLOBAL_TAG]
    _, page = read(origin, "/ui/?q=outpost*")  # case-sensitive, like the tag search
    assert table(page, "name").rows == [["no global tag matches"]]
    assert read(origin, "/ui/?q=")[0].text == read(origin, "/ui/")[0].text


def test_the_global_tag_page_shows_its_map_history_and_forms(origin: AppClient) -> None:
    url = f"/ui/globaltags/{HLT_GLOBAL_TAG}"
    _, document = twin_of(origin, url)
    answer, page = read(origin, url)
    shown = [(row[0], row[2]) for row in table(page, "record").rows]
    assert shown == [(e["record"], e["tag"]) for e in document["map"]]
    for entry in document["map"]:
        assert f"/ui/tags/{entry['tag']}" in page.links
    assert f"/v1/globaltags/{HLT_GLOBAL_TAG}/history" in page.links
    history = table(page, "seq").rows
    assert len(history) == 1 and history[0][2] == "outpost db sample"
    forms = dict(page.forms)
    assert forms[f"/ui/resolve/{HLT_GLOBAL_TAG}"] == ["run", "lumi", "snapshot"]
    assert forms["/ui/diff"] == ["a", "b", "a_snapshot", "b_snapshot"]
    assert f'name="a" value="{HLT_GLOBAL_TAG}"' in answer.text


def test_the_forms_fields_give_the_pages_they_name(origin: AppClient) -> None:
    """A form sends its empty fields too: they count as absent."""
    resolve = f"/ui/resolve/{HLT_GLOBAL_TAG}"
    assert read(origin, f"{resolve}?run={RUN}&lumi=&snapshot=")[0].text == (
        read(origin, f"{resolve}?run={RUN}")[0].text
    )
    diff = f"/ui/diff?a={HLT_GLOBAL_TAG}&b={PROMPT_GLOBAL_TAG}"
    assert read(origin, f"{diff}&a_snapshot=&b_snapshot=")[0].text == read(origin, diff)[0].text
    assert read(origin, "/ui/tags?name=&payload_type=")[0].text == read(origin, "/ui/tags")[0].text


def test_the_diff_page_colours_added_removed_and_changed_records(origin: AppClient) -> None:
    before = hlt_map(origin)
    changed = dict(before)
    del changed["CSCGainsRcd"]
    changed["EcalPedestalsRcd"] = "EcalPedestals_prompt_2025"
    changed["ExtraRcd"] = before["DTT0Rcd"]
    body = {"map": [{"record": r, "label": "", "tag": t} for r, t in changed.items()]}
    assert origin.put("/v1/globaltags/TEST_GT", json=body, headers=admin()).status_code == 201
    url = f"/ui/diff?a={HLT_GLOBAL_TAG}&b=TEST_GT"
    _, document = twin_of(origin, url)
    answer, page = read(origin, url)
    diff = table(page, "record")
    rows = {row[0]: (cls, row) for cls, row in zip(diff.classes, diff.rows, strict=True)}
    assert rows["ExtraRcd"][0] == "added" and rows["ExtraRcd"][1][4] == before["DTT0Rcd"]
    assert (
        rows["CSCGainsRcd"][0] == "removed" and rows["CSCGainsRcd"][1][3] == before["CSCGainsRcd"]
    )
    assert rows["EcalPedestalsRcd"][0] == "changed"
    assert rows["EcalPedestalsRcd"][1][3:] == [
        before["EcalPedestalsRcd"],
        "EcalPedestals_prompt_2025",
    ]
    assert "DTT0Rcd" not in rows  # unchanged records are counted, not listed
    assert "1 added" in answer.text and "1 removed" in answer.text
    assert (
        "1 pointing to another tag" in answer.text and f"{len(before) - 2} unchanged" in answer.text
    )
    listed = sum(1 for cls in diff.classes if cls in ("added", "removed", "changed"))
    assert listed == len(document["added"]) + len(document["removed"]) + len(document["changed"])
    assert "/ui/tags/EcalPedestals_prompt_2025" in page.links


def test_each_change_of_a_global_tag_links_the_diff_it_made(origin: AppClient) -> None:
    changed = hlt_map(origin)
    changed["EcalPedestalsRcd"] = "EcalPedestals_prompt_2025"
    body = {"map": [{"record": r, "label": "", "tag": t} for r, t in changed.items()]}
    assert (
        origin.put(f"/v1/globaltags/{HLT_GLOBAL_TAG}", json=body, headers=admin()).status_code
        == 200
    )
    _, page = read(origin, f"/ui/globaltags/{HLT_GLOBAL_TAG}")
    history = table(page, "seq").rows
    assert [row[2] for row in history] == ["outpost db sample", "run-coordinator"]
    diffs = [link for link in page.links if link.startswith("/ui/diff?")]
    assert len(diffs) == 2
    answer, last = read(origin, diffs[-1])
    assert answer.headers["cache-control"] == SHORT  # pinned to NOW: not settled yet
    changed = table(last, "record")
    assert [r[0] for r, c in zip(changed.rows, changed.classes, strict=True)] == [
        "EcalPedestalsRcd"
    ]
    assert changed.classes == ["changed"]
    _, first = read(origin, diffs[0])
    assert table(first, "record").classes == ["added"] * 25  # created with 25 records


def test_the_tags_page_searches_like_its_twin(origin: AppClient) -> None:
    url = "/ui/tags?name=*_hlt&payload_type=EcalPedestals"
    twin, document = twin_of(origin, url)
    assert twin == "/v1/tags?name=*_hlt&payload_type=EcalPedestals"
    _, page = read(origin, url)
    assert [row[0] for row in table(page, "name").rows] == [t["name"] for t in document["tags"]]
    assert [t["name"] for t in document["tags"]] == [hlt_map(origin)["EcalPedestalsRcd"]]
    _, everything = twin_of(origin, "/ui/tags")
    _, page = read(origin, "/ui/tags")
    assert [row[0] for row in table(page, "name").rows] == [t["name"] for t in everything["tags"]]


def test_a_tag_page_shows_the_samples_corrections(origin: AppClient) -> None:
    tag, history = corrected_tag(origin)
    answer, page = read(origin, f"/ui/tags/{tag}")
    assert 'class="correction"' in answer.text  # the mark on the correcting IOV's bar
    assert ">superseded</text>" in answer.text  # and the row of what it superseded
    corrections = table(page, "channel").rows
    first, second = (e for e in history if e["kind"] == "iovs")
    fixed = {(i["channel"], i["since"]) for i in second["iovs"]}
    assert len(fixed) >= 1 and len(corrections) >= len(fixed)
    for row in corrections[: len(fixed)]:
        assert row[3] == first["insertion_time"] and row[6] == second["insertion_time"]
        assert row[4] == row[7] == "outpost db sample"


def test_a_correction_shows_who_made_it_and_what_it_superseded(origin: AppClient) -> None:
    tag = hlt_map(origin)["EcalPedestalsRcd"]
    iovs = origin.get(f"/v1/tags/{tag}/iovs").json()["iovs"]
    target = iovs[1]
    posted = origin.post(
        "/v1/payloads?object_type=EcalPedestals", content=b"fix" * 100, headers=writer()
    )
    new = posted.json()["hash"]
    body = {"iovs": [{"since": target["since"], "payload": new}]}
    assert origin.post(f"/v1/tags/{tag}/iovs", json=body, headers=writer()).status_code == 201
    answer, page = read(origin, f"/ui/tags/{tag}")
    rows = [r for r in table(page, "channel").rows if r[1] == str(target["since"])]
    assert rows, answer.text
    row = rows[-1]
    assert row[3] == target["insertion_time"] and row[4] == "outpost db sample"
    assert row[6] == format_time(NOW) and row[7] == "ecal-calibration"
    assert f"/ui/payloads/{target['payload']}" in page.links  # the superseded payload
    assert f"/ui/payloads/{new}" in page.links
    assert "superseded: since" in answer.text and "by ecal-calibration" in answer.text


def test_a_tag_page_lists_its_twins_iovs(origin: AppClient) -> None:
    tag = hlt_map(origin)["LumiCorrectionsRcd"]  # run_lumi: keys as run:lumi
    twin, document = twin_of(origin, f"/ui/tags/{tag}")
    assert twin == f"/v1/tags/{tag}/iovs?until={2**63 - 1}"
    assert document["iovs"] == origin.get(f"/v1/tags/{tag}/iovs").json()["iovs"]
    _, page = read(origin, f"/ui/tags/{tag}")
    listed = table(page, "channel", -1).rows  # after the corrections
    assert [(r[1], r[2]) for r in listed] == [
        (format_key(i["since"], "run_lumi"), format_key(i["until"], "run_lumi"))
        for i in document["iovs"]
    ]
    assert all(re.fullmatch(r"\d+:\d+", r[1]) for r in listed)
    for iov in document["iovs"]:
        assert f"/ui/payloads/{iov['payload']}" in page.links


def test_a_tag_with_more_iovs_than_a_page_holds_is_cut_and_says_so(
    origin: AppClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ui, "MAX_ROWS", 50)
    monkeypatch.setattr(ui, "TIMELINE_CHANNELS", 10)
    tag = "EcalMany_v1"
    body = {"name": tag, "time_type": "run", "payload_type": "EcalPedestals"}
    assert origin.post("/v1/tags", json=body, headers=writer()).status_code == 201
    digest = origin.post("/v1/payloads", content=b"many", headers=writer()).json()["hash"]
    batch = [{"since": s, "payload": digest, "channel": c} for c in range(60) for s in (1, 7)]
    assert (
        origin.post(f"/v1/tags/{tag}/iovs", json={"iovs": batch}, headers=writer()).status_code
        == 201
    )
    answer, page = read(origin, f"/ui/tags/{tag}")
    listed = table(page, "channel", -1).rows
    assert len(listed) == 50
    assert "Only the first 50 IOVs" in answer.text
    assert "The first 10 of 25 channels are drawn" in answer.text
    assert answer.text.count("<rect") == 20
    assert len(origin.get(f"/v1/tags/{tag}/iovs").json()["iovs"]) == 120  # the twin has all


def test_the_resolve_page_shows_the_twins_records(origin: AppClient) -> None:
    url = f"/ui/resolve/{HLT_GLOBAL_TAG}?run={RUN}"
    _, document = twin_of(origin, url)
    answer, page = read(origin, url)
    shown = [(r[0], r[3]) for r in table(page, "record").rows]
    assert shown == [(r["record"], r["tag"]) for r in document["records"]]
    for record in document["records"]:
        assert f"/ui/tags/{record['tag']}" in page.links
        assert f"/ui/payloads/{record['payload']}" in page.links
    total = sum({r["payload"]: r["size"] for r in document["records"]}.values())
    assert f"({total} bytes)" in answer.text


def test_the_payload_page_shows_a_bounded_preview(origin: AppClient) -> None:
    largest = max(records(origin, run=1), key=lambda r: r["size"])  # the first, large ones
    assert largest["size"] >= 1024 * 1024
    url = f"/ui/payloads/{largest['payload']}"
    _, info = twin_of(origin, url)
    answer, page = read(origin, url)
    assert len(answer.content) < 20_000
    assert f"/v1/payloads/{largest['payload']}" in page.links  # the download
    assert info["by"] in answer.text and str(info["size"]) in answer.text
    data = origin.get(f"/v1/payloads/{largest['payload']}").content
    assert page.preview == hexdump(data[:512])
    assert page.preview.splitlines()[-1] == "00000200"
    assert "|OUTPOST-SAMPLE " in page.preview.splitlines()[0]


def test_the_preview_of_a_payload_in_the_file_store_reads_its_head(
    sqlite_templates: dict[bool, Path], make_client: MakeClient, tmp_path: Path
) -> None:
    path = tmp_path / "empty.sqlite"
    shutil.copyfile(sqlite_templates[False], path)
    client = make_client(
        f"sqlite:///{path}", payload_store="files", payload_dir=tmp_path / "payloads"
    )
    data = bytes(range(256)) * 10
    digest = client.post("/v1/payloads", content=data, headers=writer()).json()["hash"]
    _, page = read(client, f"/ui/payloads/{digest}")
    assert page.preview == hexdump(data[:512])
    tiny = client.post("/v1/payloads", content=b"<b>hi</b>", headers=writer()).json()["hash"]
    answer, page = read(client, f"/ui/payloads/{tiny}")
    assert page.preview == hexdump(b"<b>hi</b>") and "<b>" not in answer.text


def test_the_run_pages_show_the_record_and_how_to_reproduce_it(origin: AppClient) -> None:
    written = write_run_record(origin)
    _, document = twin_of(origin, "/ui/runs")
    _, page = read(origin, "/ui/runs")
    assert [r[0] for r in table(page, "run").rows] == [str(r["run"]) for r in document["runs"]]
    assert f"/ui/runs/{RUN}" in page.links
    answer, page = read(origin, f"/ui/runs/{RUN}")
    assert written["digest"] in answer.text and "run-control" in answer.text
    resolve = f"/ui/resolve/{HLT_GLOBAL_TAG}?run={RUN}&snapshot={written['snapshot']}"
    assert resolve in page.links
    _, again = twin_of(origin, resolve)
    assert conditions_digest(again["records"]) == written["digest"]
    assert any(["agree", "3"] in t.rows for t in page.tables)  # the attestation


@pytest.fixture
def many_runs(origin: AppClient) -> Iterator[AppClient]:
    for run in (RUN, RUN + 1, RUN + 2):
        write_run_record(origin, run)
    yield origin


def test_the_runs_page_links_the_next_page(many_runs: AppClient) -> None:
    _, page = read(many_runs, "/ui/runs?limit=2")
    assert [r[0] for r in table(page, "run").rows] == [str(RUN), str(RUN + 1)]
    assert f"/ui/runs?limit=2&since={RUN + 2}" in page.links
    _, page = read(many_runs, f"/ui/runs?limit=2&since={RUN + 2}")
    assert [r[0] for r in table(page, "run").rows] == [str(RUN + 2)]


def test_every_page_answers_on_every_backend(sample_db: str, make_client: MakeClient) -> None:
    """The statements behind the pages (the diff's two maps, the tag search, the head of a
    payload's blob) on SQLite and PostgreSQL alike."""
    client = make_client(sample_db, clock=FakeClock(NOW))
    for url in pages(client).values():
        _, page = read(client, url)
        assert page.alternate, url
    largest = max(records(client, run=1), key=lambda r: r["size"])
    _, page = read(client, f"/ui/payloads/{largest['payload']}")
    data = client.get(f"/v1/payloads/{largest['payload']}").content
    assert page.preview == hexdump(data[:512])
    _, page = read(client, "/ui/tags?name=Ecal?edestals_v?_*")
    assert [r[0] for r in table(page, "name").rows] == [hlt_map(client)["EcalPedestalsRcd"]]
