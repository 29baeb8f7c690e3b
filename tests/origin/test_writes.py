"""The write API: payloads, tags, IOV batches and global tags, each all or nothing.

Every test starts from an empty database (SQLite and PostgreSQL) and a hand-moved clock, writes
through the HTTP API and checks what the read API shows afterwards, including the raw rows of
the generic table endpoint.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from support.asgi import AppClient
from support.origin import FakeClock, MakeClient, admin, writer

from outpost.urls import RUN_MAX, format_time

PEDESTALS_A = b"EcalPedestals A\x00\x01\x02" * 20
PEDESTALS_B = b"EcalPedestals B\xff\xfe" * 30
TAG = "EcalPedestals_v1_hlt"
GT = "TEST_HLT_V1"
NO_SUCH_HASH = "ab" * 32


# --- builders ------------------------------------------------------------------------------


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def origin(empty_db: str, make_client: MakeClient, clock: FakeClock) -> AppClient:
    """An origin over an empty database whose clock moves only by hand."""
    return make_client(empty_db, clock=clock)


def upload(client: AppClient, data: bytes, object_type: str = "EcalPedestals") -> str:
    answer = client.post(f"/v1/payloads?object_type={object_type}", content=data, headers=writer())
    assert answer.status_code in (200, 201), answer.text
    return str(answer.json()["hash"])


def tag_body(name: str = TAG, time_type: str = "run", **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "time_type": time_type,
        "payload_type": "EcalPedestals",
        "description": "pedestals for the HLT",
        **extra,
    }


def make_tag(client: AppClient, name: str = TAG, time_type: str = "run") -> str:
    answer = client.post("/v1/tags", json=tag_body(name, time_type), headers=writer())
    assert answer.status_code == 201, answer.text
    return name


def append(client: AppClient, tag: str, *iovs: dict[str, Any]) -> httpx.Response:
    return client.post(f"/v1/tags/{tag}/iovs", json={"iovs": list(iovs)}, headers=writer())


def put_gt(client: AppClient, name: str, mapping: dict[str, str], **extra: Any) -> httpx.Response:
    body = {"map": [{"record": r, "label": "", "tag": t} for r, t in mapping.items()], **extra}
    return client.put(f"/v1/globaltags/{name}", json=body, headers=admin())


def table(client: AppClient, path: str) -> list[dict[str, Any]]:
    """Rows of a generic table read as dicts."""
    answer = client.get(path)
    assert answer.status_code == 200, answer.text
    document = answer.json()
    return [dict(zip(document["columns"], row, strict=True)) for row in document["rows"]]


def raw_iovs(client: AppClient, tag: str = TAG) -> list[dict[str, Any]]:
    return table(client, f"/v1/query/iovs?tag_name=eq.{tag}&order=insertion_time.asc,since.asc")


def current_iovs(client: AppClient, tag: str = TAG) -> list[tuple[int, int, str]]:
    answer = client.get(f"/v1/tags/{tag}/iovs")
    assert answer.status_code == 200, answer.text
    return [(i["channel"], i["since"], i["payload"]) for i in answer.json()["iovs"]]


def resolved(client: AppClient, gt: str = GT, run: int = 1) -> dict[str, str | None]:
    answer = client.get(f"/v1/resolve/{gt}?run={run}")
    assert answer.status_code == 200, answer.text
    return {r["record"]: r["payload"] for r in answer.json()["records"]}


def assert_error(answer: httpx.Response, status: int) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/json"
    body: dict[str, Any] = answer.json()
    assert set(body) == {"error", "detail", "accepted"}
    return body


# --- payloads ------------------------------------------------------------------------------


def test_payload_upload_is_idempotent_and_stores_the_bytes_once(origin: AppClient) -> None:
    first = origin.post(
        "/v1/payloads?object_type=EcalPedestals", content=PEDESTALS_A, headers=writer()
    )
    again = origin.post(
        "/v1/payloads?object_type=EcalPedestals", content=PEDESTALS_A, headers=writer()
    )
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json() == {
        "hash": hashlib.sha256(PEDESTALS_A).hexdigest(),
        "size": len(PEDESTALS_A),
        "created": True,
    }
    assert again.json() == {**first.json(), "created": False}
    rows = table(origin, "/v1/query/payloads")
    assert [(r["hash"], r["size"], r["object_type"]) for r in rows] == [
        (first.json()["hash"], len(PEDESTALS_A), "EcalPedestals")
    ]


def test_uploaded_payload_is_served_back_byte_for_byte(origin: AppClient) -> None:
    data = bytes(range(256)) * 5
    digest = upload(origin, data)
    served = origin.get(f"/v1/payloads/{digest}")
    assert served.status_code == 200
    assert served.content == data
    assert hashlib.sha256(served.content).hexdigest() == digest
    assert served.headers["etag"] == f'"{digest}"'


def test_payload_object_type_defaults_to_blob(origin: AppClient) -> None:
    answer = origin.post("/v1/payloads", content=b"x" * 10, headers=writer())
    assert answer.status_code == 201
    assert [r["object_type"] for r in table(origin, "/v1/query/payloads")] == ["blob"]


def test_payload_upload_with_a_bad_parameter_stores_nothing(origin: AppClient) -> None:
    for query in ("object_type=bad%20type", "object_type=x&colour=red", "object_type="):
        answer = origin.post(f"/v1/payloads?{query}", content=PEDESTALS_A, headers=writer())
        assert answer.status_code == 400, query
        assert set(answer.json()) == {"error", "detail", "accepted"}
    assert table(origin, "/v1/query/payloads") == []


# --- tags ----------------------------------------------------------------------------------


def test_tag_creation_answers_201_and_the_tag_reads_back(
    origin: AppClient, clock: FakeClock
) -> None:
    answer = origin.post("/v1/tags", json=tag_body(time_type="run_lumi"), headers=writer())
    assert answer.status_code == 201
    assert answer.json() == {"name": TAG, "created": True}
    assert origin.get(f"/v1/tags/{TAG}").json() == {
        "name": TAG,
        "time_type": "run_lumi",
        "payload_type": "EcalPedestals",
        "description": "pedestals for the HLT",
        "state": "open",
        "created_at": format_time(clock.now),
        "modified_at": format_time(clock.now),
    }


def test_tag_description_may_be_left_out(origin: AppClient) -> None:
    body = {"name": TAG, "time_type": "timestamp", "payload_type": "EcalPedestals"}
    assert origin.post("/v1/tags", json=body, headers=writer()).status_code == 201
    assert origin.get(f"/v1/tags/{TAG}").json()["description"] == ""


def test_repeating_an_identical_tag_creation_answers_200_created_false(origin: AppClient) -> None:
    make_tag(origin)
    again = origin.post("/v1/tags", json=tag_body(), headers=writer())
    assert again.status_code == 200
    assert again.json() == {"name": TAG, "created": False}
    assert len(table(origin, "/v1/query/tags")) == 1


def test_same_tag_name_with_other_metadata_is_a_409_conflict(origin: AppClient) -> None:
    make_tag(origin)
    before = origin.get(f"/v1/tags/{TAG}").json()
    for change in (
        {"time_type": "timestamp"},
        {"payload_type": "EcalGains"},
        {"description": "other text"},
    ):
        answer = origin.post("/v1/tags", json={**tag_body(), **change}, headers=writer())
        assert answer.status_code == 409, change
        assert set(answer.json()) == {"error", "detail", "accepted"}
    assert origin.get(f"/v1/tags/{TAG}").json() == before


INVALID_TAGS: list[Any] = [
    tag_body(time_type="lumi"),
    {**tag_body(), "time_type": None},
    tag_body(name="Ecal pedestals"),
    tag_body(name="Ecal/pedestals"),
    tag_body(name="Ecal" + "x" * 200),
    {**tag_body(), "name": 5},
    tag_body(payload_type="Ecal Pedestals"),
    {**tag_body(), "description": None},
    tag_body(description="x" * 5000),
    {"name": TAG, "payload_type": "EcalPedestals"},
    [tag_body()],
    "EcalPedestals_v1_hlt",
]


def test_invalid_tag_is_refused_with_400_and_not_created(origin: AppClient) -> None:
    for body in INVALID_TAGS:
        answer = origin.post("/v1/tags", json=body, headers=writer())
        assert answer.status_code == 400, body
        assert answer.json()["error"] == "bad request"
    assert table(origin, "/v1/query/tags") == []


# --- IOVs: append, corrections, locks ------------------------------------------------------


def test_appended_iovs_are_visible_in_the_tags_iovs(origin: AppClient, clock: FakeClock) -> None:
    make_tag(origin)
    a, b = upload(origin, PEDESTALS_A), upload(origin, PEDESTALS_B)
    answer = append(origin, TAG, {"since": 1, "payload": a}, {"since": 100, "payload": b.upper()})
    assert answer.status_code == 201
    assert answer.json()["inserted"] == 2
    inserted = answer.json()["insertion_time"]
    assert inserted >= clock.now  # the clock, or later than every earlier change
    iovs = origin.get(f"/v1/tags/{TAG}/iovs").json()["iovs"]
    assert iovs == [
        {"channel": 0, "since": 1, "until": 100, "payload": a, "size": len(PEDESTALS_A),
         "insertion_time": format_time(inserted)},
        {"channel": 0, "since": 100, "until": None, "payload": b, "size": len(PEDESTALS_B),
         "insertion_time": format_time(inserted)},
    ]  # fmt: skip


def test_iov_channels_are_kept_apart(origin: AppClient) -> None:
    make_tag(origin)
    a, b = upload(origin, PEDESTALS_A), upload(origin, PEDESTALS_B)
    answer = append(
        origin, TAG, {"since": 1, "payload": a}, {"since": 1, "payload": b, "channel": 7}
    )
    assert answer.status_code == 201
    assert current_iovs(origin) == [(0, 1, a), (7, 1, b)]


def test_appended_iov_is_resolved_through_a_global_tag(origin: AppClient, clock: FakeClock) -> None:
    make_tag(origin)
    a, b = upload(origin, PEDESTALS_A), upload(origin, PEDESTALS_B)
    assert put_gt(origin, GT, {"EcalPedestalsRcd": TAG}).status_code == 201
    assert resolved(origin, run=5) == {"EcalPedestalsRcd": None}
    clock.advance(1)
    assert append(origin, TAG, {"since": 1, "payload": a}).status_code == 201
    clock.advance(1)
    assert append(origin, TAG, {"since": 10, "payload": b}).status_code == 201
    assert resolved(origin, run=5) == {"EcalPedestalsRcd": a}
    assert resolved(origin, run=10) == {"EcalPedestalsRcd": b}


def test_correction_wins_in_later_reads_while_both_rows_remain(
    origin: AppClient, clock: FakeClock
) -> None:
    make_tag(origin)
    a, b = upload(origin, PEDESTALS_A), upload(origin, PEDESTALS_B)
    put_gt(origin, GT, {"EcalPedestalsRcd": TAG})
    first = append(origin, TAG, {"since": 1, "payload": a}).json()["insertion_time"]
    clock.advance(60)
    second = append(origin, TAG, {"since": 1, "payload": b}).json()["insertion_time"]
    assert second > first
    assert current_iovs(origin) == [(0, 1, b)]
    assert resolved(origin, run=3) == {"EcalPedestalsRcd": b}
    assert [(r["since"], r["payload_hash"], r["insertion_time"]) for r in raw_iovs(origin)] == [
        (1, a, first),
        (1, b, second),
    ]
    # and the database as it was before the correction is still there to read
    before = origin.get(f"/v1/tags/{TAG}/iovs?snapshot={format_time(first)}").json()
    assert [i["payload"] for i in before["iovs"]] == [a]


def test_correction_wins_even_if_the_clock_went_backwards(
    origin: AppClient, clock: FakeClock
) -> None:
    make_tag(origin)
    a, b = upload(origin, PEDESTALS_A), upload(origin, PEDESTALS_B)
    first = append(origin, TAG, {"since": 1, "payload": a}).json()["insertion_time"]
    clock.advance(-3600)
    second = append(origin, TAG, {"since": 1, "payload": b}).json()["insertion_time"]
    assert second > first
    assert current_iovs(origin) == [(0, 1, b)]


def test_locking_a_tag_answers_changed_once_and_unknown_tags_404(origin: AppClient) -> None:
    make_tag(origin)
    first = origin.post(f"/v1/tags/{TAG}/lock", headers=admin())
    again = origin.post(f"/v1/tags/{TAG}/lock", headers=admin())
    assert (first.status_code, again.status_code) == (200, 200)
    assert first.json() == {"tag": TAG, "state": "locked", "changed": True}
    assert again.json() == {"tag": TAG, "state": "locked", "changed": False}
    assert origin.get(f"/v1/tags/{TAG}").json()["state"] == "locked"
    assert_error(origin.post("/v1/tags/EcalNothing/lock", headers=admin()), 404)


def test_append_to_a_locked_tag_is_409_and_changes_nothing(
    origin: AppClient, clock: FakeClock
) -> None:
    make_tag(origin)
    a, b = upload(origin, PEDESTALS_A), upload(origin, PEDESTALS_B)
    append(origin, TAG, {"since": 1, "payload": a})
    origin.post(f"/v1/tags/{TAG}/lock", headers=admin())
    rows, tag = raw_iovs(origin), origin.get(f"/v1/tags/{TAG}").json()
    clock.advance(10)
    answer = append(origin, TAG, {"since": 1, "payload": b}, {"since": 5, "payload": b})
    assert_error(answer, 409)
    assert raw_iovs(origin) == rows
    assert origin.get(f"/v1/tags/{TAG}").json() == tag


def test_locking_a_tag_changes_its_etag_even_if_the_clock_stands_still(origin: AppClient) -> None:
    make_tag(origin)
    before = origin.get(f"/v1/tags/{TAG}")
    origin.post(f"/v1/tags/{TAG}/lock", headers=admin())
    after = origin.get(f"/v1/tags/{TAG}", headers={"If-None-Match": before.headers["etag"]})
    assert after.status_code == 200
    assert after.json()["state"] == "locked"


# --- IOV batches are all or nothing --------------------------------------------------------


def test_iov_batch_with_an_unknown_payload_writes_nothing(origin: AppClient) -> None:
    make_tag(origin)
    a = upload(origin, PEDESTALS_A)
    answer = append(origin, TAG, {"since": 1, "payload": a}, {"since": 2, "payload": NO_SUCH_HASH})
    body = assert_error(answer, 404)
    assert NO_SUCH_HASH in body["detail"]
    assert raw_iovs(origin) == []


def test_iov_batch_for_an_unknown_tag_is_404(origin: AppClient) -> None:
    a = upload(origin, PEDESTALS_A)
    assert_error(append(origin, "EcalNothing", {"since": 1, "payload": a}), 404)
    assert table(origin, "/v1/query/iovs") == []


def test_iov_batch_naming_one_channel_and_since_twice_writes_nothing(origin: AppClient) -> None:
    make_tag(origin)
    a, b = upload(origin, PEDESTALS_A), upload(origin, PEDESTALS_B)
    answer = append(
        origin, TAG, {"since": 1, "payload": a}, {"since": 7, "payload": a, "channel": 0},
        {"since": 7, "payload": b},
    )  # fmt: skip
    assert_error(answer, 400)
    assert raw_iovs(origin) == []


BAD_ITEMS: list[dict[str, Any]] = [
    {"since": RUN_MAX + 1},
    {"since": 2**63},
    {"since": -1},
    {"since": "5"},
    {"since": 1.5},
    {"since": True},
    {"since": None},
    {},
    {"since": 3, "channel": -1},
    {"since": 3, "channel": "0"},
    {"since": 3, "payload": "not-a-hash"},
    {"since": 3, "payload": "g" * 64},
    {"since": 3, "payload": 12},
    {"since": 3, "colour": "red"},
]


def test_iov_batch_with_a_bad_item_is_400_and_writes_nothing(origin: AppClient) -> None:
    make_tag(origin)
    a = upload(origin, PEDESTALS_A)
    for item in BAD_ITEMS:
        answer = append(origin, TAG, {"since": 1, "payload": a}, {"payload": a, **item})
        assert answer.status_code == 400, item
        assert answer.json()["error"] == "bad request"
    assert raw_iovs(origin) == []


def test_iov_body_of_the_wrong_shape_is_400(origin: AppClient) -> None:
    make_tag(origin)
    for body in ({"iovs": []}, {}, {"iovs": {"since": 1}}, {"iovs": [5]}, [], {"iovs": [], "x": 1}):
        answer = origin.post(f"/v1/tags/{TAG}/iovs", json=body, headers=writer())
        assert answer.status_code == 400, body
    assert raw_iovs(origin) == []


def test_run_tag_accepts_the_largest_run_number(origin: AppClient) -> None:
    make_tag(origin)
    a = upload(origin, PEDESTALS_A)
    assert append(origin, TAG, {"since": RUN_MAX, "payload": a}).status_code == 201
    assert current_iovs(origin) == [(0, RUN_MAX, a)]


def test_run_lumi_and_timestamp_tags_accept_sinces_beyond_run_numbers(origin: AppClient) -> None:
    a = upload(origin, PEDESTALS_A)
    for time_type, since in (("run_lumi", (RUN_MAX << 32) | 7), ("timestamp", 2**40)):
        name = make_tag(origin, f"Ecal_{time_type}", time_type)
        assert append(origin, name, {"since": since, "payload": a}).status_code == 201
        assert current_iovs(origin, name) == [(0, since, a)]


# --- global tags ---------------------------------------------------------------------------


@pytest.fixture
def two_tags(origin: AppClient) -> tuple[str, str]:
    """Two run tags with an IOV at run 1 each; returns their payload hashes."""
    a, b = upload(origin, PEDESTALS_A), upload(origin, PEDESTALS_B)
    for name, digest in (("EcalPedestals_v1", a), ("EcalGains_v1", b)):
        make_tag(origin, name)
        assert append(origin, name, {"since": 1, "payload": digest}).status_code == 201
    return a, b


def gt_map(client: AppClient, gt: str = GT) -> list[tuple[str, str, str]]:
    answer = client.get(f"/v1/globaltags/{gt}")
    assert answer.status_code == 200, answer.text
    return [(e["record"], e["label"], e["tag"]) for e in answer.json()["map"]]


def test_global_tag_put_creates_it_with_201(origin: AppClient, two_tags: tuple[str, str]) -> None:
    answer = put_gt(origin, GT, {"EcalPedestalsRcd": "EcalPedestals_v1"}, description="HLT test")
    assert answer.status_code == 201
    assert answer.json() == {"name": GT, "created": True}
    document = origin.get(f"/v1/globaltags/{GT}").json()
    assert (document["state"], document["description"]) == ("open", "HLT test")
    assert gt_map(origin) == [("EcalPedestalsRcd", "", "EcalPedestals_v1")]
    assert resolved(origin) == {"EcalPedestalsRcd": two_tags[0]}


def test_global_tag_put_replaces_its_map_with_200(
    origin: AppClient, two_tags: tuple[str, str], clock: FakeClock
) -> None:
    put_gt(origin, GT, {"EcalPedestalsRcd": "EcalPedestals_v1"})
    clock.advance(1)
    answer = put_gt(
        origin, GT, {"EcalPedestalsRcd": "EcalGains_v1", "EcalGainRatiosRcd": "EcalGains_v1"}
    )
    assert answer.status_code == 200
    assert answer.json() == {"name": GT, "created": False}
    assert gt_map(origin) == [
        ("EcalGainRatiosRcd", "", "EcalGains_v1"),
        ("EcalPedestalsRcd", "", "EcalGains_v1"),
    ]
    b = two_tags[1]
    assert resolved(origin) == {"EcalGainRatiosRcd": b, "EcalPedestalsRcd": b}


def test_record_left_out_of_a_put_is_dropped_from_map_and_resolve(
    origin: AppClient, two_tags: tuple[str, str], clock: FakeClock
) -> None:
    put_gt(origin, GT, {"EcalPedestalsRcd": "EcalPedestals_v1", "EcalGainsRcd": "EcalGains_v1"})
    clock.advance(1)
    assert put_gt(origin, GT, {"EcalGainsRcd": "EcalGains_v1"}).status_code == 200
    assert gt_map(origin) == [("EcalGainsRcd", "", "EcalGains_v1")]
    assert resolved(origin) == {"EcalGainsRcd": two_tags[1]}
    # an empty map drops everything; a record dropped can be mapped again
    clock.advance(1)
    assert put_gt(origin, GT, {}).status_code == 200
    assert (gt_map(origin), resolved(origin)) == ([], {})
    clock.advance(1)
    put_gt(origin, GT, {"EcalPedestalsRcd": "EcalPedestals_v1"})
    assert resolved(origin) == {"EcalPedestalsRcd": two_tags[0]}


def test_global_tag_mapping_an_unknown_tag_is_404_and_not_created(
    origin: AppClient, two_tags: tuple[str, str]
) -> None:
    answer = put_gt(origin, GT, {"EcalPedestalsRcd": "EcalPedestals_v1", "HcalRcd": "Hcal_v9"})
    assert "Hcal_v9" in assert_error(answer, 404)["detail"]
    assert_error(origin.get(f"/v1/globaltags/{GT}"), 404)
    assert table(origin, "/v1/query/global_tags") == []
    assert table(origin, "/v1/query/global_tag_map") == []


def test_global_tag_put_with_an_unknown_tag_leaves_the_map_as_it_was(
    origin: AppClient, two_tags: tuple[str, str], clock: FakeClock
) -> None:
    put_gt(origin, GT, {"EcalPedestalsRcd": "EcalPedestals_v1"})
    rows = table(origin, "/v1/query/global_tag_map")
    clock.advance(1)
    assert_error(put_gt(origin, GT, {"EcalGainsRcd": "Hcal_v9"}), 404)
    assert gt_map(origin) == [("EcalPedestalsRcd", "", "EcalPedestals_v1")]
    assert table(origin, "/v1/query/global_tag_map") == rows


def test_locked_global_tag_refuses_every_put_with_409(
    origin: AppClient, two_tags: tuple[str, str], clock: FakeClock
) -> None:
    answer = put_gt(origin, GT, {"EcalPedestalsRcd": "EcalPedestals_v1"}, state="locked")
    assert answer.status_code == 201
    before = origin.get(f"/v1/globaltags/{GT}")
    assert before.json()["state"] == "locked"
    clock.advance(1)
    for change, state in (
        ({"EcalPedestalsRcd": "EcalGains_v1"}, "locked"),
        ({"EcalPedestalsRcd": "EcalPedestals_v1"}, "locked"),
        ({}, "open"),
    ):
        assert put_gt(origin, GT, change, state=state).status_code == 409, (change, state)
    after = origin.get(f"/v1/globaltags/{GT}")
    assert (after.json(), after.headers["etag"]) == (before.json(), before.headers["etag"])


def test_global_tag_is_locked_by_a_later_put(origin: AppClient, two_tags: tuple[str, str]) -> None:
    mapping = {"EcalPedestalsRcd": "EcalPedestals_v1"}
    put_gt(origin, GT, mapping)
    before = origin.get(f"/v1/globaltags/{GT}").headers["etag"]
    assert put_gt(origin, GT, mapping, state="locked").status_code == 200
    after = origin.get(f"/v1/globaltags/{GT}", headers={"If-None-Match": before})
    assert after.status_code == 200
    assert after.json()["state"] == "locked"


def test_identical_global_tag_put_leaves_its_etag_unchanged(
    origin: AppClient, two_tags: tuple[str, str], clock: FakeClock
) -> None:
    mapping = {"EcalPedestalsRcd": "EcalPedestals_v1", "EcalGainsRcd": "EcalGains_v1"}
    put_gt(origin, GT, mapping, description="HLT test")
    before = origin.get(f"/v1/globaltags/{GT}")
    resolve_before = origin.get(f"/v1/resolve/{GT}?run=1").headers["etag"]
    clock.advance(30)
    for description in ({"description": "HLT test"}, {}):
        again = put_gt(origin, GT, mapping, **description)
        assert again.status_code == 200
        assert again.json() == {"name": GT, "created": False}
    after = origin.get(f"/v1/globaltags/{GT}")
    assert after.headers["etag"] == before.headers["etag"]
    assert after.json() == before.json()
    assert origin.get(f"/v1/resolve/{GT}?run=1").headers["etag"] == resolve_before
    etag = before.headers["etag"]
    assert origin.get(f"/v1/globaltags/{GT}", headers={"If-None-Match": etag}).status_code == 304


def test_changed_global_tag_put_changes_its_etag(
    origin: AppClient, two_tags: tuple[str, str]
) -> None:
    put_gt(origin, GT, {"EcalPedestalsRcd": "EcalPedestals_v1"})
    before = origin.get(f"/v1/globaltags/{GT}").headers["etag"]
    put_gt(origin, GT, {"EcalPedestalsRcd": "EcalGains_v1"})  # the clock did not move
    after = origin.get(f"/v1/globaltags/{GT}", headers={"If-None-Match": before})
    assert after.status_code == 200
    assert gt_map(origin) == [("EcalPedestalsRcd", "", "EcalGains_v1")]


def test_global_tag_labels_are_separate_entries(
    origin: AppClient, two_tags: tuple[str, str]
) -> None:
    body = {
        "map": [
            {"record": "EcalPedestalsRcd", "label": "", "tag": "EcalPedestals_v1"},
            {"record": "EcalPedestalsRcd", "label": "offline", "tag": "EcalGains_v1"},
        ]
    }
    assert origin.put(f"/v1/globaltags/{GT}", json=body, headers=admin()).status_code == 201
    assert gt_map(origin) == [
        ("EcalPedestalsRcd", "", "EcalPedestals_v1"),
        ("EcalPedestalsRcd", "offline", "EcalGains_v1"),
    ]


ENTRY = {"record": "EcalPedestalsRcd", "tag": "EcalPedestals_v1"}
INVALID_GLOBAL_TAGS: list[Any] = [
    {"map": [ENTRY, {**ENTRY, "label": ""}]},
    {"map": [{**ENTRY, "colour": "red"}]},
    {"map": [{**ENTRY, "record": "Ecal Rcd"}]},
    {"map": [{**ENTRY, "label": "a b"}]},
    {"map": [{"record": "EcalPedestalsRcd"}]},
    {"map": [ENTRY], "state": "frozen"},
    {"map": [ENTRY], "owner": "me"},
    {"map": [ENTRY], "description": 5},
    {"map": {"EcalPedestalsRcd": "EcalPedestals_v1"}},
    {"description": "no map"},
    [ENTRY],
]


def test_invalid_global_tag_put_is_400_and_writes_nothing(
    origin: AppClient, two_tags: tuple[str, str]
) -> None:
    for body in INVALID_GLOBAL_TAGS:
        answer = origin.put(f"/v1/globaltags/{GT}", json=body, headers=admin())
        assert answer.status_code == 400, body
        assert answer.json()["error"] == "bad request"
    assert table(origin, "/v1/query/global_tags") == []
    assert table(origin, "/v1/query/global_tag_map") == []


# --- bodies: size and syntax ---------------------------------------------------------------


@pytest.fixture
def small(empty_db: str, make_client: MakeClient) -> AppClient:
    """An origin that accepts bodies of at most 1000 bytes."""
    return make_client(empty_db, max_body_bytes=1000)


def test_body_over_max_body_bytes_is_413_and_nothing_is_stored(small: AppClient) -> None:
    assert_error(small.post("/v1/payloads", content=b"x" * 1001, headers=writer()), 413)
    assert table(small, "/v1/query/payloads") == []
    assert small.post("/v1/payloads", content=b"x" * 1000, headers=writer()).status_code == 201


def test_streamed_body_over_max_body_bytes_is_413_and_nothing_is_stored(small: AppClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(5):
            yield b"y" * 300

    answer = small.post("/v1/payloads", content=chunks(), headers=writer())
    assert "content-length" not in answer.request.headers
    assert_error(answer, 413)
    assert table(small, "/v1/query/payloads") == []


def test_json_body_over_max_body_bytes_is_413_and_writes_nothing(small: AppClient) -> None:
    make_tag(small)
    a = upload(small, PEDESTALS_A)
    batch = [{"since": s, "payload": a} for s in range(1, 30)]
    answer = small.post(f"/v1/tags/{TAG}/iovs", json={"iovs": batch}, headers=writer())
    assert_error(answer, 413)
    assert raw_iovs(small) == []


def test_malformed_json_is_400_and_writes_nothing(origin: AppClient) -> None:
    make_tag(origin)
    headers = {**admin(), "content-type": "application/json"}
    for method, path in (
        ("POST", "/v1/tags"),
        ("POST", f"/v1/tags/{TAG}/iovs"),
        ("PUT", f"/v1/globaltags/{GT}"),
    ):
        for body in (b"{not json", b"", b"\xff\xfe{}", b'{"name": "x",}', b"{}{}"):
            answer = origin.request(method, path, content=body, headers=headers)
            assert answer.status_code == 400, (method, path, body)
            assert answer.json()["error"] == "bad request"
    assert len(table(origin, "/v1/query/tags")) == 1
    assert raw_iovs(origin) == []
    assert table(origin, "/v1/query/global_tags") == []


def test_unknown_json_field_is_400_and_named(origin: AppClient) -> None:
    answer = origin.post("/v1/tags", json=tag_body(colour="red"), headers=writer())
    body = assert_error(answer, 400)
    assert "colour" in body["detail"]
    assert body["accepted"] is not None
    assert table(origin, "/v1/query/tags") == []
