"""The read API's queries behind the conditions browser: tag search (`/v1/tags?name=GLOB&
payload_type=T`), a payload's metadata (`/v1/payloads/{sha256}/info`) and the diff of two
global tags (`/v1/diff/globaltags?a=…&b=…`), on SQLite and PostgreSQL: answers, caching
headers, errors.
"""

from __future__ import annotations

from typing import Any

import pytest
from support.asgi import AppClient
from support.origin import FakeClock, MakeClient, admin, writer

from origin.query import encode, sql
from origin.sample import HLT_GLOBAL_TAG, PROMPT_GLOBAL_TAG
from outpost.urls import format_time

NOW = 1_800_000_000_000_000  # after every row of the sample
SHORT = "public, max-age=120"
FOREVER = "public, max-age=31536000, immutable"


@pytest.fixture
def origin(sample_db: str, make_client: MakeClient) -> AppClient:
    return make_client(sample_db, clock=FakeClock(NOW), ttl_short_seconds=120)


def get(client: AppClient, url: str, status: int = 200) -> Any:
    answer = client.get(url)
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/json"
    return answer.json()


def hlt_map(client: AppClient) -> dict[str, str]:
    document = get(client, f"/v1/globaltags/{HLT_GLOBAL_TAG}")
    return {entry["record"]: entry["tag"] for entry in document["map"]}


def create_tag(client: AppClient, name: str) -> None:
    body = {"name": name, "time_type": "run", "payload_type": "EcalPedestals"}
    assert client.post("/v1/tags", json=body, headers=writer()).status_code == 201


# --- /v1/tags ------------------------------------------------------------------------------------


def test_the_tag_list_holds_every_tag_in_name_order(origin: AppClient) -> None:
    answer = origin.get("/v1/tags")
    assert answer.headers["cache-control"] == SHORT
    document = answer.json()
    names = [t["name"] for t in document["tags"]]
    assert len(names) == 30 and names == sorted(names) and document["truncated"] is False
    first = get(origin, f"/v1/tags/{names[0]}")
    assert document["tags"][0] == first  # the fields of the tag's own answer


def test_a_name_glob_matches_like_fnmatch_case_sensitive(origin: AppClient) -> None:
    names = [t["name"] for t in get(origin, "/v1/tags")["tags"]]
    for glob, expected in [
        ("Ecal*", [n for n in names if n.startswith("Ecal")]),
        ("*_prompt_2025", [n for n in names if n.endswith("_prompt_2025")]),
        ("Hcal*_v?_hlt", [n for n in names if n.startswith("Hcal") and n.endswith("_hlt")]),
        ("ecal*", []),
        ("nothing*", []),
    ]:
        found = get(origin, f"/v1/tags?name={glob}")["tags"]
        assert [t["name"] for t in found] == expected, glob
        assert bool(expected) is (glob not in ("ecal*", "nothing*")), glob


def test_an_underscore_in_a_glob_matches_only_an_underscore(origin: AppClient) -> None:
    create_tag(origin, "Ecal_x_1")
    create_tag(origin, "EcalXx_1")
    create_tag(origin, "EcalYx_1")
    found = get(origin, "/v1/tags?name=Ecal_x_1")["tags"]
    assert [t["name"] for t in found] == ["Ecal_x_1"]
    found = get(origin, "/v1/tags?name=Ecal_*")["tags"]
    assert [t["name"] for t in found] == ["Ecal_x_1"]
    found = get(origin, "/v1/tags?name=Ecal?x_1")["tags"]
    assert [t["name"] for t in found] == ["EcalXx_1", "EcalYx_1", "Ecal_x_1"]


def test_tags_are_found_by_payload_type_and_name_together(origin: AppClient) -> None:
    found = get(origin, "/v1/tags?payload_type=EcalPedestals")["tags"]
    assert {t["payload_type"] for t in found} == {"EcalPedestals"} and len(found) == 2
    found = get(origin, "/v1/tags?name=*_hlt&payload_type=EcalPedestals")["tags"]
    assert [t["name"] for t in found] == [hlt_map(origin)["EcalPedestalsRcd"]]
    assert get(origin, "/v1/tags?payload_type=Nothing")["tags"] == []


def test_a_tag_list_over_its_limit_says_it_is_truncated(
    origin: AppClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sql, "TAG_LIST_LIMIT", 3)
    monkeypatch.setattr(encode, "TAG_LIST_LIMIT", 3)
    document = get(origin, "/v1/tags?name=Ecal*")
    assert len(document["tags"]) == 3 and document["truncated"] is True


def test_the_tag_list_moves_its_etag_when_a_tag_changes(origin: AppClient) -> None:
    first = origin.get("/v1/tags?name=Ecal*")
    etag = first.headers["etag"]
    assert origin.get("/v1/tags?name=Ecal*", headers={"if-none-match": etag}).status_code == 304
    create_tag(origin, "EcalNew_v1")
    assert origin.get("/v1/tags?name=Ecal*", headers={"if-none-match": etag}).status_code == 200


@pytest.mark.parametrize(
    ("query", "detail"),
    [
        ("name=%3Cscript%3E", "is not a name glob"),
        ("name=a%25", "is not a name glob"),
        ("payload_type=a;b", "is not a plain name"),
        ("tag=x", "unknown parameter 'tag'"),
    ],
)
def test_a_bad_tag_search_is_a_bad_request(origin: AppClient, query: str, detail: str) -> None:
    document = get(origin, f"/v1/tags?{query}", 400)
    assert detail in document["detail"]


# --- /v1/payloads/{sha256}/info ------------------------------------------------------------------


def test_a_payloads_info_says_what_it_is_and_who_uploaded_it(origin: AppClient) -> None:
    resolved = get(origin, f"/v1/resolve/{HLT_GLOBAL_TAG}?run=500")["records"]
    digest, size = resolved[0]["payload"], resolved[0]["size"]
    answer = origin.get(f"/v1/payloads/{digest}/info")
    assert answer.status_code == 200 and answer.headers["cache-control"] == FOREVER
    document = answer.json()
    assert set(document) == {"hash", "size", "object_type", "created_at", "by"}
    assert document["hash"] == digest and document["size"] == size
    assert document["by"] == "outpost db sample"
    assert document["object_type"] == get(origin, f"/v1/tags/{resolved[0]['tag']}")["payload_type"]
    head = origin.head(f"/v1/payloads/{digest}/info")
    assert head.status_code == 200 and head.content == b""


def test_an_uploaded_payloads_info_names_its_writer(origin: AppClient) -> None:
    posted = origin.post(
        "/v1/payloads?object_type=EcalPedestals", content=b"x" * 10, headers=writer()
    )
    digest = posted.json()["hash"]
    document = get(origin, f"/v1/payloads/{digest}/info")
    assert document["by"] == "ecal-calibration" and document["size"] == 10
    assert document["object_type"] == "EcalPedestals"
    assert document["created_at"] == format_time(NOW)


def test_an_unknown_payloads_info_is_not_found(origin: AppClient) -> None:
    document = get(origin, f"/v1/payloads/{'0' * 64}/info", 404)
    assert document["detail"] == f"payload {'0' * 64} does not exist"
    assert origin.get(f"/v1/payloads/{'0' * 64}/info").headers["cache-control"] == "no-store"


# --- /v1/diff/globaltags -------------------------------------------------------------------------


def test_the_diff_of_the_samples_global_tags(origin: AppClient) -> None:
    answer = origin.get(f"/v1/diff/globaltags?a={HLT_GLOBAL_TAG}&b={PROMPT_GLOBAL_TAG}")
    assert answer.status_code == 200 and answer.headers["cache-control"] == SHORT
    document = answer.json()
    assert document["a"] == {"globaltag": HLT_GLOBAL_TAG, "snapshot": None}
    assert document["b"] == {"globaltag": PROMPT_GLOBAL_TAG, "snapshot": None}
    hlt = hlt_map(origin)
    prompt = {
        e["record"]: e["tag"] for e in get(origin, f"/v1/globaltags/{PROMPT_GLOBAL_TAG}")["map"]
    }
    assert document["added"] == []
    assert document["removed"] == [
        {"record": r, "label": "", "tag": hlt[r]} for r in sorted(hlt) if r not in prompt
    ]
    assert document["changed"] == [
        {"record": r, "label": "", "a_tag": hlt[r], "b_tag": prompt[r]} for r in sorted(prompt)
    ]
    assert document["unchanged"] == 0
    backwards = get(origin, f"/v1/diff/globaltags?a={PROMPT_GLOBAL_TAG}&b={HLT_GLOBAL_TAG}")
    assert [e["record"] for e in backwards["added"]] == [e["record"] for e in document["removed"]]


def test_a_global_tag_diffed_with_itself_at_two_snapshots_shows_its_change(
    origin: AppClient,
) -> None:
    before = hlt_map(origin)
    changed = dict(before)
    del changed["CSCGainsRcd"]
    changed["EcalPedestalsRcd"] = "EcalPedestals_prompt_2025"
    changed["ExtraRcd"] = before["DTT0Rcd"]
    body = {"map": [{"record": r, "label": "", "tag": t} for r, t in changed.items()]}
    assert (
        origin.put(f"/v1/globaltags/{HLT_GLOBAL_TAG}", json=body, headers=admin()).status_code
        == 200
    )
    written = get(origin, f"/v1/globaltags/{HLT_GLOBAL_TAG}/history")["history"][-1]["time"]
    earlier = format_time(NOW - 1)
    url = (
        f"/v1/diff/globaltags?a={HLT_GLOBAL_TAG}&a_snapshot={earlier}"
        f"&b={HLT_GLOBAL_TAG}&b_snapshot={written}"
    )
    answer = origin.get(url)
    assert answer.headers["cache-control"] == SHORT  # b's snapshot is not settled yet
    document = answer.json()
    assert document["added"] == [{"record": "ExtraRcd", "label": "", "tag": before["DTT0Rcd"]}]
    assert document["removed"] == [
        {"record": "CSCGainsRcd", "label": "", "tag": before["CSCGainsRcd"]}
    ]
    assert document["changed"] == [
        {
            "record": "EcalPedestalsRcd",
            "label": "",
            "a_tag": before["EcalPedestalsRcd"],
            "b_tag": "EcalPedestals_prompt_2025",
        }
    ]
    assert document["unchanged"] == len(before) - 2
    now = get(
        origin, f"/v1/diff/globaltags?a={HLT_GLOBAL_TAG}&a_snapshot={earlier}&b={HLT_GLOBAL_TAG}"
    )
    assert {k: now[k] for k in ("added", "removed", "changed")} == {
        k: document[k] for k in ("added", "removed", "changed")
    }


def test_a_diff_pinned_to_two_settled_snapshots_is_cached_forever(origin: AppClient) -> None:
    url = (
        f"/v1/diff/globaltags?a={HLT_GLOBAL_TAG}&a_snapshot=2026-01-01T00:00:00Z"
        f"&b={HLT_GLOBAL_TAG}&b_snapshot=2026-06-01T00:00:00Z"
    )
    answer = origin.get(url)
    assert answer.headers["cache-control"] == FOREVER
    document = answer.json()
    assert document["removed"] == document["changed"] == [] and document["unchanged"] == 0
    assert len(document["added"]) == 25  # the global tag did not exist at the first snapshot


@pytest.mark.parametrize(
    ("a", "b", "missing"),
    [("NOPE", HLT_GLOBAL_TAG, "NOPE"), (HLT_GLOBAL_TAG, "GONE", "GONE"), ("X", "Y", "X")],
)
def test_a_diff_with_an_unknown_global_tag_is_not_found_naming_it(
    origin: AppClient, a: str, b: str, missing: str
) -> None:
    answer = origin.get(f"/v1/diff/globaltags?a={a}&b={b}")
    assert answer.status_code == 404 and answer.headers["cache-control"] == "no-store"
    assert answer.json()["detail"] == f"global tag {missing!r} does not exist"
