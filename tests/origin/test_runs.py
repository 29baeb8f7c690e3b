"""Run records: run control records which conditions each run was taken with, once, and anyone
reads them back (`POST /v1/runs/R`, `GET /v1/runs/R`, `GET /v1/runs?since=R&limit=N`).

Every test runs an origin over a private copy of the sample database (SQLite and PostgreSQL)
with a hand-moved clock and the tokens of `support.origin` plus one for run control. A digest is
what `outpost.conditions` computes from a resolve answer's records, as run control's caches do.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.asgi import AppClient
from support.origin import TOKENS, FakeClock, MakeClient, admin, writer

from origin.sample import HLT_GLOBAL_TAG, PROMPT_GLOBAL_TAG
from origin.writes import WriteSession
from outpost.conditions import conditions, conditions_digest
from outpost.urls import LUMI_MAX, RUN_MAX, format_time

NOW = 1_800_000_000_000_000  # after every row of the sample
RUN_CONTROL_TOKEN = "run-control-token"
RUN_CONTROL = "run-control"
ATTESTATION = {"caches": 2001, "agree": 2001, "differ": [], "failed": []}
FOREVER = "public, max-age=31536000, immutable"


@pytest.fixture
def tokens_file(tmp_path: Path) -> Path:
    """The usual writer and admin, and run control."""
    path = tmp_path / "tokens.toml"
    path.write_text(
        f'{TOKENS}\n[[token]]\nname = "{RUN_CONTROL}"\nrole = "runcontrol"\n'
        f'token = "{RUN_CONTROL_TOKEN}"\n'
    )
    return path


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOW)


@pytest.fixture
def origin(sample_db: str, make_client: MakeClient, clock: FakeClock) -> AppClient:
    return make_client(sample_db, clock=clock, ttl_short_seconds=120)


def run_control() -> dict[str, str]:
    return writer(RUN_CONTROL_TOKEN)


def resolved(
    client: AppClient,
    run: int,
    lumi: int = 1,
    snapshot: str | None = None,
    gt: str = HLT_GLOBAL_TAG,
) -> list[dict[str, Any]]:
    url = f"/v1/resolve/{gt}?run={run}&lumi={lumi}"
    if snapshot is not None:
        url += f"&snapshot={snapshot}"
    answer = client.get(url)
    assert answer.status_code == 200, answer.text
    records: list[dict[str, Any]] = answer.json()["records"]
    return records


def digest_of(client: AppClient, run: int, lumi: int = 1, gt: str = HLT_GLOBAL_TAG) -> str:
    """What run control's caches attest: the digest of the resolve answer's records."""
    return conditions_digest(resolved(client, run, lumi, gt=gt))


def body(client: AppClient, run: int, **changes: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "globaltag": HLT_GLOBAL_TAG,
        "digest": digest_of(client, run, changes.get("lumi", 1)),
        "attestation": ATTESTATION,
    }
    return {**document, **changes}


def post(
    client: AppClient, run: int, document: Any, headers: dict[str, str] | None = None
) -> httpx.Response:
    return client.post(
        f"/v1/runs/{run}", json=document, headers=run_control() if headers is None else headers
    )


def assert_error(answer: httpx.Response, status: int) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/json"
    assert answer.headers["cache-control"] == "no-store"
    document: dict[str, Any] = answer.json()
    assert set(document) == {"error", "detail", "accepted"} and document["detail"]
    return document


def run_list(client: AppClient, query: str = "") -> dict[str, Any]:
    answer = client.get(f"/v1/runs{query}")
    assert answer.status_code == 200, answer.text
    document: dict[str, Any] = answer.json()
    return document


def feed(client: AppClient) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = client.get("/v1/changes?after=0&limit=10000").json()["changes"]
    return entries


# --- writing and reading a record -------------------------------------------------------------


def test_a_record_is_created_and_reads_back_with_what_was_resolved(origin: AppClient) -> None:
    document = body(origin, 500, lumi=7)
    written = post(origin, 500, document)
    assert written.status_code == 201, written.text
    snapshot = written.json()["snapshot"]
    assert written.json() == {
        "run": 500,
        "created": True,
        "digest": document["digest"],
        "snapshot": snapshot,
    }

    answer = origin.get("/v1/runs/500")
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "run": 500,
        "globaltag": HLT_GLOBAL_TAG,
        "lumi": 7,
        "digest": document["digest"],
        "snapshot": snapshot,
        "records": conditions(resolved(origin, 500, lumi=7)),
        "attestation": ATTESTATION,
        "by": RUN_CONTROL,
        "created_at": format_time(NOW),
    }
    assert conditions_digest(answer.json()["records"]) == document["digest"]
    assert answer.headers["cache-control"] == FOREVER
    assert answer.headers["last-modified"] and answer.headers["etag"]
    again = origin.get("/v1/runs/500", headers={"If-None-Match": answer.headers["etag"]})
    assert again.status_code == 304 and again.headers["cache-control"] == FOREVER


def test_the_same_record_again_is_a_200_retry_that_writes_nothing(
    origin: AppClient, clock: FakeClock
) -> None:
    document = body(origin, 500)
    first = post(origin, 500, document)
    assert first.status_code == 201, first.text
    before = origin.get("/v1/runs/500").content
    clock.advance(60)
    again = post(origin, 500, {**document, "attestation": {"caches": 1}})  # a later count
    assert again.status_code == 200, again.text
    assert again.json() == {**first.json(), "created": False}
    assert origin.get("/v1/runs/500").content == before
    assert [e["kind"] for e in feed(origin)].count("run") == 1


@pytest.mark.parametrize(
    "change",
    [{"digest": "0" * 64}, {"lumi": 2}, {"globaltag": PROMPT_GLOBAL_TAG}],
    ids=["digest", "lumi", "globaltag"],
)
def test_another_record_for_a_recorded_run_is_a_409_naming_the_recorded_digest(
    origin: AppClient, change: dict[str, Any]
) -> None:
    document = body(origin, 500)
    assert post(origin, 500, document).status_code == 201
    before = origin.get("/v1/runs/500").content
    other = {**document, **change}
    if "digest" not in change:  # what those conditions really are: only the run is taken
        other["digest"] = digest_of(origin, 500, other.get("lumi", 1), other["globaltag"])
    refused = assert_error(post(origin, 500, other), 409)
    assert "run 500 has a record already" in refused["detail"]
    assert "never change" in refused["detail"]
    assert refused["accepted"] == document["digest"]
    assert origin.get("/v1/runs/500").content == before


def test_a_digest_that_is_not_the_origins_is_a_409_and_records_nothing(origin: AppClient) -> None:
    stale = body(origin, 500, digest="ab" * 32)
    refused = assert_error(post(origin, 500, stale), 409)
    assert HLT_GLOBAL_TAG in refused["detail"] and "run 500" in refused["detail"]
    assert "changed since the attestation" in refused["detail"]
    assert refused["accepted"] == digest_of(origin, 500)
    assert_error(origin.get("/v1/runs/500"), 404)
    assert run_list(origin)["runs"] == []
    assert "run" not in [e["kind"] for e in feed(origin)]


def test_a_record_of_an_unknown_global_tag_is_404(origin: AppClient) -> None:
    document = body(origin, 500, globaltag="NO_SUCH_GT")
    assert "NO_SUCH_GT" in assert_error(post(origin, 500, document), 404)["detail"]
    assert run_list(origin)["runs"] == []


def test_a_run_without_any_record_is_a_404_that_is_never_cached(origin: AppClient) -> None:
    missing = assert_error(origin.get("/v1/runs/501"), 404)
    assert "run 501" in missing["detail"]
    assert origin.get("/v1/runs/501").headers["cache-control"] == "no-store"


# --- the snapshot ------------------------------------------------------------------------------


def test_the_snapshot_reproduces_the_recorded_conditions_after_a_correction(
    origin: AppClient, clock: FakeClock
) -> None:
    document = body(origin, 500, lumi=3)
    written = post(origin, 500, document)
    assert written.status_code == 201, written.text
    snapshot = written.json()["snapshot"]

    clock.advance(60)
    record = resolved(origin, 500, lumi=3)[1]
    fixed = origin.post("/v1/payloads", content=b"corrected constants", headers=admin())
    correction = {"iovs": [{"since": record["since"], "payload": fixed.json()["hash"]}]}
    posted = origin.post(f"/v1/tags/{record['tag']}/iovs", json=correction, headers=admin())
    assert posted.status_code == 201, posted.text

    assert digest_of(origin, 500, lumi=3) != document["digest"]  # the head moved on
    pinned = resolved(origin, 500, lumi=3, snapshot=snapshot)
    assert conditions_digest(pinned) == document["digest"]
    assert conditions(pinned) == origin.get("/v1/runs/500").json()["records"]
    # the attested digest is stale now: the next run cannot be recorded with it
    stale = assert_error(post(origin, 501, {**document}), 409)
    assert stale["accepted"] == digest_of(origin, 501, lumi=3)


# --- who may write -----------------------------------------------------------------------------


def test_a_record_needs_a_token_and_a_writer_may_not_write_one(origin: AppClient) -> None:
    document = body(origin, 500)
    anonymous = post(origin, 500, document, headers={})
    assert_error(anonymous, 401)
    assert anonymous.headers["www-authenticate"].startswith("Bearer")
    forbidden = assert_error(post(origin, 500, document, headers=writer()), 403)
    assert "write run records" in forbidden["detail"]
    assert forbidden["accepted"] == "role runcontrol or admin"
    assert_error(post(origin, 500, document, headers=writer("not-a-token")), 401)
    assert run_list(origin)["runs"] == []


def test_run_control_and_admin_may_write_records(origin: AppClient) -> None:
    assert post(origin, 500, body(origin, 500), headers=run_control()).status_code == 201
    assert post(origin, 600, body(origin, 600), headers=admin()).status_code == 201
    who = {r["run"]: r["by"] for r in run_list(origin)["runs"]}
    assert who == {500: RUN_CONTROL, 600: "run-coordinator"}


def test_run_control_may_not_write_conditions(origin: AppClient) -> None:
    headers = run_control()
    tag = resolved(origin, 500)[0]["tag"]
    before = origin.get(f"/v1/globaltags/{HLT_GLOBAL_TAG}").content
    refused = [
        origin.post("/v1/payloads", content=b"constants", headers=headers),
        origin.post(
            "/v1/tags",
            json={"name": "EcalNew", "time_type": "run", "payload_type": "X"},
            headers=headers,
        ),
        origin.post(
            f"/v1/tags/{tag}/iovs",
            json={"iovs": [{"since": 1, "payload": "ab" * 32}]},
            headers=headers,
        ),
        origin.post(f"/v1/tags/{tag}/lock", headers=headers),
        origin.put(
            f"/v1/globaltags/{HLT_GLOBAL_TAG}",
            json={"map": [{"record": "R", "tag": tag}]},
            headers=headers,
        ),
    ]
    for answer in refused:
        assert "(runcontrol) may not" in assert_error(answer, 403)["detail"]
    assert refused[0].json()["accepted"] == "role writer or admin"
    assert origin.get(f"/v1/globaltags/{HLT_GLOBAL_TAG}").content == before
    assert origin.get("/v1/tags/EcalNew").status_code == 404


# --- bad requests ------------------------------------------------------------------------------
# Refused before any SQL runs, so one SQLite origin serves each table of cases.

DIGEST = "0123456789abcdef" * 4
GOOD: dict[str, Any] = {"globaltag": HLT_GLOBAL_TAG, "digest": DIGEST, "attestation": {}}
MALFORMED: list[tuple[Any, str]] = [
    # (body, what the detail says)
    ([GOOD], "must be a JSON object"),
    ("run", "must be a JSON object"),
    ({**GOOD, "comment": "x"}, "unknown fields ['comment']"),
    ({"digest": DIGEST, "attestation": {}}, "needs a globaltag"),
    ({**GOOD, "globaltag": 5}, "globaltag=5 is not a string"),
    ({**GOOD, "globaltag": None}, "globaltag=None is not a string"),
    ({**GOOD, "globaltag": "a;b"}, "is not a plain name"),
    ({**GOOD, "lumi": "1"}, "lumi='1' is not an integer"),
    ({**GOOD, "lumi": True}, "lumi=True is not an integer"),
    ({**GOOD, "lumi": 1.0}, "lumi=1.0 is not an integer"),
    ({**GOOD, "lumi": -1}, f"lumi=-1 is not an integer in 0..{LUMI_MAX}"),
    ({**GOOD, "lumi": LUMI_MAX + 1}, "is not an integer in"),
    ({**GOOD, "digest": DIGEST.upper()}, "not a SHA-256 hash in lowercase hex"),
    ({**GOOD, "digest": DIGEST[:-1]}, "not a SHA-256 hash"),
    ({**GOOD, "digest": "g" * 64}, "not a SHA-256 hash"),
    ({**GOOD, "digest": 5}, "not a SHA-256 hash"),
    ({k: v for k, v in GOOD.items() if k != "digest"}, "digest=None is not a SHA-256"),
    ({**GOOD, "attestation": []}, "attestation=[] is not a JSON object"),
    ({**GOOD, "attestation": "all good"}, "is not a JSON object"),
    ({k: v for k, v in GOOD.items() if k != "attestation"}, "attestation=None is not"),
    ({**GOOD, "attestation": {"failed": ["node"] * 10_000}}, "bytes as JSON"),
]


@pytest.fixture
def refusing(sample_sqlite: str, make_client: MakeClient) -> AppClient:
    return make_client(sample_sqlite)


def test_a_malformed_record_is_a_400_saying_what_was_wrong(refusing: AppClient) -> None:
    for document, detail in MALFORMED:
        refused = assert_error(post(refusing, 500, document), 400)
        assert detail in refused["detail"], (document, refused)
        assert refused["accepted"], document
    for content in (b"", b"{", b"not json", b"\xff\xfe", b'{"a": 1}{}'):
        answer = refusing.post("/v1/runs/500", content=content, headers=run_control())
        assert "not JSON" in assert_error(answer, 400)["detail"], content
    assert run_list(refusing)["runs"] == []


def test_a_post_to_something_that_is_no_run_is_refused_clearly(refusing: AppClient) -> None:
    for path, status in [
        ("/v1/runs/five", 400),
        ("/v1/runs/-1", 400),
        (f"/v1/runs/{RUN_MAX + 1}", 400),
        ("/v1/runs/500?lumi=2", 400),
        ("/v1/runs", 405),
        ("/v1/runs/500/extra", 405),
    ]:
        assert_error(refusing.post(path, json=GOOD, headers=run_control()), status)


def test_a_malformed_list_is_a_400(refusing: AppClient) -> None:
    for query in ["?limit=0", "?limit=1001", "?since=-1", f"?since={RUN_MAX + 1}", "?after=3"]:
        assert_error(refusing.get(f"/v1/runs{query}"), 400)


def test_an_attestation_of_64_kib_is_accepted_and_one_byte_more_is_not(origin: AppClient) -> None:
    frame = len(b'{"x":""}')
    document = body(origin, 500, attestation={"x": "a" * (64 * 1024 - frame + 1)})
    assert_error(post(origin, 500, document), 400)
    document["attestation"] = {"x": "a" * (64 * 1024 - frame)}
    assert post(origin, 500, document).status_code == 201
    assert len(origin.get("/v1/runs/500").json()["attestation"]["x"]) == 64 * 1024 - frame


# --- the list ----------------------------------------------------------------------------------


def test_the_list_pages_through_the_records_in_run_order(
    origin: AppClient, clock: FakeClock
) -> None:
    for run in (700, 500, 600, 800):  # written out of order
        clock.advance(1)
        assert post(origin, run, body(origin, run)).status_code == 201
    whole = run_list(origin)
    assert (whole["since"], whole["limit"], whole["next"]) == (0, 100, None)
    assert [r["run"] for r in whole["runs"]] == [500, 600, 700, 800]
    one = origin.get("/v1/runs/600").json()
    assert whole["runs"][1] == {k: v for k, v in one.items() if k != "records"}

    pages, since = [], 0
    while since is not None:
        page = run_list(origin, f"?since={since}&limit=3" if since else "?limit=3")
        pages.append([r["run"] for r in page["runs"]])
        since = page["next"]
    assert pages == [[500, 600, 700], [800]]
    assert [r["run"] for r in run_list(origin, "?since=600&limit=1")["runs"]] == [600]
    assert run_list(origin, "?since=600&limit=1")["next"] == 700
    assert run_list(origin, "?since=801")["runs"] == []


def test_the_list_is_short_lived_and_revalidates_until_a_record_is_added(
    origin: AppClient, clock: FakeClock
) -> None:
    empty = origin.get("/v1/runs")
    assert empty.headers["cache-control"] == "public, max-age=120"
    assert post(origin, 500, body(origin, 500)).status_code == 201
    first = origin.get("/v1/runs")
    assert first.headers["cache-control"] == "public, max-age=120"
    assert first.headers["etag"] != empty.headers["etag"]
    etag = first.headers["etag"]
    assert origin.get("/v1/runs", headers={"If-None-Match": etag}).status_code == 304

    later = origin.get("/v1/runs?since=500").headers["etag"]
    clock.advance(-3600)  # the machine's clock stepped back: the list's version still moves on
    assert post(origin, 400, body(origin, 400)).status_code == 201
    assert origin.get("/v1/runs", headers={"If-None-Match": etag}).status_code == 200
    assert origin.get("/v1/runs?since=500", headers={"If-None-Match": later}).status_code == 304


# --- the feed, the audit log, concurrency ------------------------------------------------------


def test_a_record_is_in_the_feed_and_the_audit_log(
    origin: AppClient, caplog: pytest.LogCaptureFixture
) -> None:
    document = body(origin, 500)
    with caplog.at_level(logging.INFO, logger="outpost.origin.audit"):
        assert post(origin, 500, document).status_code == 201
        assert post(origin, 500, document).status_code == 200  # a retry leaves no trace
    (entry,) = [e for e in feed(origin) if e["kind"] == "run"]
    assert entry == {
        "seq": entry["seq"],
        "time": format_time(NOW),
        "kind": "run",
        "run": 500,
        "globaltag": HLT_GLOBAL_TAG,
        "lumi": 1,
        "digest": document["digest"],
        "by": RUN_CONTROL,
        "urls": ["/v1/runs/500"],
    }
    lines = [r.getMessage() for r in caplog.records if r.name == "outpost.origin.audit"]
    assert lines == [f"run 500 by {RUN_CONTROL} at feed position {entry['seq']}"]
    history = origin.get(f"/v1/globaltags/{HLT_GLOBAL_TAG}/history").json()["history"]
    assert "run" not in [h["kind"] for h in history]


def test_concurrent_posts_for_one_run_create_it_once(origin: AppClient) -> None:
    document = body(origin, 500)
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: post(origin, 500, document), range(8)))
    assert sorted(a.status_code for a in answers) == [200] * 7 + [201], [a.text for a in answers]
    assert [e["kind"] for e in feed(origin)].count("run") == 1


def test_a_record_that_loses_the_race_to_its_insert_answers_as_a_retry(
    origin: AppClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The primary key settles a race the lock did not: the loser is a retry (200) or a 409,
    never a 500."""
    document = body(origin, 500)
    assert post(origin, 500, document).status_code == 201
    real = WriteSession._run_record
    blind = iter([True])

    def racing(session: WriteSession, run: int) -> dict[str, Any] | None:
        return None if next(blind, False) else real(session, run)  # misses it once

    monkeypatch.setattr(WriteSession, "_run_record", racing)
    assert post(origin, 500, document).json()["created"] is False
    blind = iter([True])
    other = {**body(origin, 500, lumi=2), "globaltag": HLT_GLOBAL_TAG}
    assert_error(post(origin, 500, other), 409)
