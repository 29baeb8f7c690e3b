"""The audit trail: every write is stored with who made it (the writer token's `name`), shown in
the histories of the read API and in the feed's entries, and logged once committed; a write that
fails or changes nothing leaves no trace. SQLite and PostgreSQL, through the origin's ASGI app.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from support.asgi import AppClient
from support.origin import MakeClient, admin, writer

from origin.db import create_engines, migrate
from origin.load import load_file
from origin.writes import Writes

TAG = "EcalPedestals_v1_hlt"
GT = "TEST_HLT_V1"
WRITER, ADMIN = "ecal-calibration", "run-coordinator"  # the token names in support.origin


@pytest.fixture
def origin(empty_db: str, make_client: MakeClient) -> AppClient:
    return make_client(empty_db)


def upload(client: AppClient, data: bytes) -> str:
    answer = client.post("/v1/payloads?object_type=Blob", content=data, headers=writer())
    assert answer.status_code in (200, 201), answer.text
    return str(answer.json()["hash"])


def make_tag(client: AppClient) -> None:
    body = {"name": TAG, "time_type": "run", "payload_type": "Blob", "description": ""}
    assert client.post("/v1/tags", json=body, headers=writer()).status_code == 201


def append(client: AppClient, *iovs: tuple[int, str]) -> int:
    body = {"iovs": [{"since": since, "payload": digest} for since, digest in iovs]}
    return client.post(f"/v1/tags/{TAG}/iovs", json=body, headers=writer()).status_code


def history(client: AppClient, url: str) -> dict[str, Any]:
    answer = client.get(url)
    assert answer.status_code == 200, answer.text
    document: dict[str, Any] = answer.json()
    return document


def test_a_tag_history_says_who_did_what_and_when(origin: AppClient) -> None:
    first, second = upload(origin, b"one"), upload(origin, b"two")
    make_tag(origin)
    assert append(origin, (1, first)) == 201
    assert append(origin, (100, second)) == 201
    assert origin.post(f"/v1/tags/{TAG}/lock", headers=admin()).status_code == 200

    document = history(origin, f"/v1/tags/{TAG}/history")
    entries = document["history"]
    assert document["tag"] == TAG and document["next"] is None
    assert [(e["kind"], e["by"]) for e in entries] == [
        ("tag", WRITER),
        ("iovs", WRITER),
        ("iovs", WRITER),
        ("lock", ADMIN),
    ]
    assert [e["iovs"][0]["payload"] for e in entries[1:3]] == [first, second]
    times = [e["time"] for e in entries]
    assert times == sorted(times) and len(set(times)) == 4
    assert all("urls" not in e for e in entries)
    # the same record in the feed, where the uploads are too
    feed = origin.get("/v1/changes?after=0").json()["changes"]
    assert [(e["kind"], e["by"]) for e in feed] == [
        ("payload", WRITER),
        ("payload", WRITER),
        *[(e["kind"], e["by"]) for e in entries],
    ]


def test_a_global_tag_history_names_its_editor(origin: AppClient) -> None:
    make_tag(origin)
    body = {"map": [{"record": "EcalPedestalsRcd", "label": "", "tag": TAG}]}
    assert origin.put(f"/v1/globaltags/{GT}", json=body, headers=admin()).status_code == 201
    body["state"] = "locked"  # type: ignore[assignment]
    assert origin.put(f"/v1/globaltags/{GT}", json=body, headers=admin()).status_code == 200
    entries = history(origin, f"/v1/globaltags/{GT}/history")["history"]
    assert [(e["kind"], e["state"], e["by"]) for e in entries] == [
        ("globaltag", "open", ADMIN),
        ("globaltag", "locked", ADMIN),
    ]
    assert history(origin, f"/v1/tags/{TAG}/history")["history"][0]["kind"] == "tag"


def test_a_refused_write_leaves_no_trace(origin: AppClient) -> None:
    make_tag(origin)
    before = history(origin, f"/v1/tags/{TAG}/history")
    assert append(origin, (5, "f" * 64)) == 404  # no such payload: refused, nothing written
    body = {"iovs": [{"since": 1, "payload": upload(origin, b"x")}]}
    refused = origin.post(f"/v1/tags/{TAG}/iovs", json=body, headers=writer("wrong-token"))
    assert refused.status_code == 401
    assert history(origin, f"/v1/tags/{TAG}/history") == before


def test_writes_are_logged_once_committed(
    origin: AppClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="outpost.origin.audit"):
        make_tag(origin)
        assert append(origin, (5, "f" * 64)) == 404
    lines = [r.getMessage() for r in caplog.records if r.name == "outpost.origin.audit"]
    assert lines == [f"tag {TAG} by {WRITER} at feed position 1"]


def test_histories_come_in_bounded_pages(
    origin: AppClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_tag(origin)
    digest = upload(origin, b"calibration")
    for since in range(1, 5):
        assert append(origin, (since, digest)) == 201
    whole = history(origin, f"/v1/tags/{TAG}/history")
    assert len(whole["history"]) == 5 and whole["next"] is None
    for module in ("origin.query.sql", "origin.query.encode"):
        monkeypatch.setattr(f"{module}.HISTORY_PAGE", 2)
    pages, after = [], 0
    while after is not None:
        page = history(origin, f"/v1/tags/{TAG}/history?after={after}")
        assert len(page["history"]) <= 2
        pages += page["history"]
        after = page["next"]
    assert pages == whole["history"]


@pytest.mark.parametrize(
    ("url", "status"),
    [
        ("/v1/tags/NoSuchTag/history", 404),
        ("/v1/globaltags/NO_SUCH_GT/history", 404),
        ("/v1/tags/T/history?after=-1", 400),
        ("/v1/tags/T/history?after=1x", 400),
        ("/v1/tags/T/history?since=1", 400),
        ("/v1/tags/bad;name/history", 400),
    ],
)
def test_bad_history_requests_are_clear_4xx(origin: AppClient, url: str, status: int) -> None:
    answer = origin.get(url)
    assert answer.status_code == status
    assert answer.json()["error"] and answer.json()["detail"]


def test_an_import_records_who_ran_it(empty_db: str, tmp_path: Path) -> None:
    conditions = tmp_path / "conditions.yaml"
    conditions.write_text(f"tags:\n  - name: {TAG}\n    time_type: run\n    payload_type: Blob\n")
    migrate(empty_db)
    engines = create_engines(empty_db)
    try:
        load_file(conditions, Writes(engines.writer, lambda: 1, who="alice (outpost db load)"))
        with engines.reader.connect() as conn:
            rows = conn.exec_driver_sql("SELECT kind, who FROM changes").all()
    finally:
        engines.dispose()
    assert [tuple(r) for r in rows] == [("tag", "alice (outpost db load)")]
