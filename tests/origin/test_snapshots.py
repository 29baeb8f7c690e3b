"""Snapshots: a query pinned to a time sees the database as it was, byte for byte, forever."""

from __future__ import annotations

from support.asgi import AppClient
from support.origin import FakeClock, MakeClient, admin

from origin.sample import HLT_GLOBAL_TAG
from outpost.urls import format_time

NOW = 1_800_000_000_000_000


def upload(client: AppClient, data: bytes) -> str:
    return str(client.post("/v1/payloads", content=data, headers=admin()).json()["hash"])


def resolve_at(client: AppClient, run: int, snapshot: int | None = None) -> bytes:
    url = f"/v1/resolve/{HLT_GLOBAL_TAG}?run={run}"
    if snapshot is not None:
        url += f"&snapshot={format_time(snapshot)}"
    answer = client.get(url)
    assert answer.status_code == 200, answer.text
    return answer.content


def test_a_correction_wins_now_but_not_in_a_snapshot_before_it(
    sample_db: str, make_client: MakeClient
) -> None:
    clock = FakeClock(NOW)
    client = make_client(sample_db, clock=clock)
    record = client.get(f"/v1/resolve/{HLT_GLOBAL_TAG}?run=500").json()["records"][1]
    before = resolve_at(client, 500, snapshot=NOW)

    clock.advance(60)
    fixed = upload(client, b"corrected constants")
    correction = {"iovs": [{"since": record["since"], "payload": fixed}]}
    assert (
        client.post(f"/v1/tags/{record['tag']}/iovs", json=correction, headers=admin()).status_code
        == 201
    )

    now = client.get(f"/v1/resolve/{HLT_GLOBAL_TAG}?run=500").json()["records"][1]
    assert now["payload"] == fixed and now["since"] == record["since"]
    assert resolve_at(client, 500, snapshot=NOW) == before


def test_tag_iovs_at_a_snapshot_hide_later_insertions(
    sample_db: str, make_client: MakeClient
) -> None:
    clock = FakeClock(NOW)
    client = make_client(sample_db, clock=clock)
    tag = client.get(f"/v1/globaltags/{HLT_GLOBAL_TAG}").json()["map"][0]["tag"]
    url = f"/v1/tags/{tag}/iovs?snapshot={format_time(NOW)}"
    before = client.get(url).content
    clock.advance(60)
    new = upload(client, b"later constants")
    client.post(
        f"/v1/tags/{tag}/iovs",
        json={"iovs": [{"since": 5_000_000_000_000, "payload": new}]},
        headers=admin(),
    )
    assert client.get(url).content == before
    assert new in client.get(f"/v1/tags/{tag}/iovs").text


def test_global_tag_map_changes_do_not_reach_an_earlier_snapshot(
    sample_db: str, make_client: MakeClient
) -> None:
    clock = FakeClock(NOW)
    client = make_client(sample_db, clock=clock)
    before = resolve_at(client, 500, snapshot=NOW)
    mapping = client.get(f"/v1/globaltags/{HLT_GLOBAL_TAG}").json()["map"]
    clock.advance(60)
    smaller = {
        "map": [{"record": e["record"], "label": e["label"], "tag": e["tag"]} for e in mapping[1:]]
    }
    assert (
        client.put(f"/v1/globaltags/{HLT_GLOBAL_TAG}", json=smaller, headers=admin()).status_code
        == 200
    )

    records_now = [
        r["record"] for r in client.get(f"/v1/resolve/{HLT_GLOBAL_TAG}?run=500").json()["records"]
    ]
    assert mapping[0]["record"] not in records_now
    assert resolve_at(client, 500, snapshot=NOW) == before


def test_snapshot_before_the_sample_existed_sees_nothing(client: AppClient) -> None:
    answer = client.get(f"/v1/resolve/{HLT_GLOBAL_TAG}?run=500&snapshot=2020-01-01T00:00:00Z")
    assert answer.status_code == 200
    assert answer.json()["records"] == []
