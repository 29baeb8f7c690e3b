"""The read API answers what the data model says, checked against an independent oracle.

The oracle reads raw rows through the generic table endpoint and applies the model's rules in
plain Python (newest insertion wins, an IOV lasts until the next since), so the SQL translator
is compared with a second, simpler statement of the same rules.
"""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from support.asgi import AppClient

from origin.query.sql import run_lumi_key
from origin.sample import HLT_GLOBAL_TAG, PROMPT_GLOBAL_TAG
from outpost.urls import INT64_MAX

RUNS = [1, 2, 137, 500, 999, 1000]


def raw_iovs(client: AppClient, tag: str) -> list[dict[str, Any]]:
    answer = client.get(f"/v1/query/iovs?tag_name=eq.{tag}&limit=10000").json()
    return [dict(zip(answer["columns"], row, strict=True)) for row in answer["rows"]]


def current_iovs(rows: list[dict[str, Any]], snapshot: int = INT64_MAX) -> list[dict[str, Any]]:
    """Newest insertion per (channel, since) at `snapshot`, each with its `until`."""
    newest: dict[tuple[int, int], dict[str, Any]] = {}
    for row in rows:
        key = (row["channel"], row["since"])
        if row["insertion_time"] <= snapshot and (
            key not in newest or row["insertion_time"] > newest[key]["insertion_time"]
        ):
            newest[key] = row
    ordered = sorted(newest.values(), key=lambda r: (r["channel"], r["since"]))
    result = []
    for index, row in enumerate(ordered):
        following = ordered[index + 1] if index + 1 < len(ordered) else None
        until = following["since"] if following and following["channel"] == row["channel"] else None
        result.append({**row, "until": until})
    return result


def oracle_resolve(
    client: AppClient, globaltag: str, run: int, lumi: int = 1
) -> list[tuple[Any, ...]]:
    mapping = client.get(f"/v1/globaltags/{globaltag}").json()["map"]
    expected = []
    for entry in mapping:
        tag = client.get(f"/v1/tags/{entry['tag']}").json()
        key = {"run": run, "run_lumi": run_lumi_key(run, lumi), "timestamp": INT64_MAX}[
            tag["time_type"]
        ]
        valid = [r for r in current_iovs(raw_iovs(client, entry["tag"])) if r["since"] <= key]
        chosen = max(valid, key=lambda r: r["since"]) if valid else None
        expected.append(
            (
                entry["record"],
                entry["tag"],
                chosen and chosen["since"],
                chosen and chosen["until"],
                chosen and chosen["payload_hash"],
            )
        )
    return expected


def test_global_tags_lists_both_sample_global_tags_with_their_state(client: AppClient) -> None:
    answer = client.get("/v1/globaltags").json()
    states = {gt["name"]: gt["state"] for gt in answer["globaltags"]}
    assert states == {HLT_GLOBAL_TAG: "open", PROMPT_GLOBAL_TAG: "locked"}


def test_global_tag_map_names_every_record_once(client: AppClient) -> None:
    answer = client.get(f"/v1/globaltags/{HLT_GLOBAL_TAG}").json()
    records = [entry["record"] for entry in answer["map"]]
    assert len(records) == len(set(records)) >= 20
    assert answer["state"] == "open"


def test_tag_metadata_carries_time_type_and_state(client: AppClient) -> None:
    first = client.get(f"/v1/globaltags/{PROMPT_GLOBAL_TAG}").json()["map"][0]["tag"]
    tag = client.get(f"/v1/tags/{first}").json()
    assert tag["name"] == first
    assert tag["state"] == "locked"
    assert tag["time_type"] in ("run", "run_lumi", "timestamp")


@pytest.mark.parametrize("run", RUNS)
def test_resolve_matches_the_model_for_every_record(client: AppClient, run: int) -> None:
    answer = client.get(f"/v1/resolve/{HLT_GLOBAL_TAG}?run={run}").json()
    got = [(r["record"], r["tag"], r["since"], r["until"], r["payload"]) for r in answer["records"]]
    assert got == oracle_resolve(client, HLT_GLOBAL_TAG, run)
    assert answer["run"] == run and answer["lumi"] == 1


def test_resolve_of_run_lumi_tags_uses_the_lumi_section(client: AppClient) -> None:
    late_lumi = client.get(f"/v1/resolve/{HLT_GLOBAL_TAG}?run=600&lumi=250").json()
    got = [
        (r["record"], r["tag"], r["since"], r["until"], r["payload"]) for r in late_lumi["records"]
    ]
    assert got == oracle_resolve(client, HLT_GLOBAL_TAG, 600, lumi=250)


def test_resolve_gives_size_of_every_payload_it_names(client: AppClient) -> None:
    answer = client.get(f"/v1/resolve/{HLT_GLOBAL_TAG}?run=500").json()
    for record in answer["records"]:
        payload = client.get(f"/v1/payloads/{record['payload']}")
        assert len(payload.content) == record["size"]


def test_resolve_before_the_first_iov_lists_the_record_without_payload(client: AppClient) -> None:
    answer = client.get(f"/v1/resolve/{HLT_GLOBAL_TAG}?run=0").json()
    run_typed = [r for r in answer["records"] if r["time_type"] == "run"]
    assert run_typed and all(r["payload"] is None and r["since"] is None for r in run_typed)


@pytest.mark.parametrize(("since", "until"), [(0, None), (1, 2), (100, 400), (999, 1000)])
def test_tag_iovs_are_those_overlapping_the_range(
    client: AppClient, since: int, until: int | None
) -> None:
    tag = next(
        e["tag"]
        for e in client.get(f"/v1/globaltags/{HLT_GLOBAL_TAG}").json()["map"]
        if client.get(f"/v1/tags/{e['tag']}").json()["time_type"] == "run"
    )
    query = f"since={since}" + (f"&until={until}" if until else "")
    answer = client.get(f"/v1/tags/{tag}/iovs?{query}").json()
    upper = INT64_MAX if until is None else until
    expected = [
        (r["since"], r["until"], r["payload_hash"])
        for r in current_iovs(raw_iovs(client, tag))
        if r["since"] < upper and (r["until"] is None or r["until"] > since)
    ]
    assert [(i["since"], i["until"], i["payload"]) for i in answer["iovs"]] == expected
    assert expected, "the range should hold at least one IOV"


def test_payload_is_served_as_octets_with_its_digest(client: AppClient) -> None:
    record = client.get(f"/v1/resolve/{HLT_GLOBAL_TAG}?run=500").json()["records"][0]
    answer = client.get(f"/v1/payloads/{record['payload']}")
    assert hashlib.sha256(answer.content).hexdigest() == record["payload"]
    assert answer.headers["content-type"] == "application/octet-stream"
    assert answer.headers["etag"] == f'"{record["payload"]}"'
    assert answer.headers["repr-digest"].startswith("sha-256=:")


def test_payload_head_gives_length_without_body(client: AppClient) -> None:
    record = client.get(f"/v1/resolve/{HLT_GLOBAL_TAG}?run=500").json()["records"][0]
    answer = client.head(f"/v1/payloads/{record['payload']}")
    assert answer.status_code == 200
    assert answer.content == b""
    assert int(answer.headers["content-length"]) == record["size"]


def test_payload_hash_in_upper_case_is_the_same_payload(client: AppClient) -> None:
    record = client.get(f"/v1/resolve/{HLT_GLOBAL_TAG}?run=500").json()["records"][0]
    upper = client.get(f"/v1/payloads/{record['payload'].upper()}")
    assert hashlib.sha256(upper.content).hexdigest() == record["payload"]


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (
            f"/v1/resolve/{HLT_GLOBAL_TAG}?run=500",
            f"/v1/resolve/{HLT_GLOBAL_TAG}/?lumi=1&run=%2B0500",
        ),
        (
            "/v1/query/tags?select=name,state&order=name.asc&limit=5",
            "/v1/query/tags?limit=05&order=name&select=name,state&",
        ),
    ],
)
def test_other_spellings_of_a_query_get_the_same_bytes(
    client: AppClient, first: str, second: str
) -> None:
    a, b = client.get(first), client.get(second)
    assert a.status_code == b.status_code == 200
    assert a.content == b.content
    assert a.headers["etag"] == b.headers["etag"]


def test_generic_query_selects_filters_orders_and_limits(client: AppClient) -> None:
    answer = client.get(
        "/v1/query/tags?select=name,time_type&time_type=in.(run_lumi,timestamp)&order=name.desc&limit=3"
    ).json()
    assert answer["columns"] == ["name", "time_type"]
    names = [row[0] for row in answer["rows"]]
    assert names == sorted(names, reverse=True) and len(names) == 3
    assert all(row[1] in ("run_lumi", "timestamp") for row in answer["rows"])
    assert answer["truncated"] is True


def test_generic_query_compares_integers_as_integers(client: AppClient) -> None:
    answer = client.get("/v1/query/payloads?select=hash,size&size=ge.1048576&order=size.asc").json()
    sizes = [row[1] for row in answer["rows"]]
    assert sizes and all(size >= 1_048_576 for size in sizes) and sizes == sorted(sizes)
    assert answer["truncated"] is False


def test_generic_query_never_shows_payload_bytes(client: AppClient) -> None:
    everything = client.get("/v1/query/payloads?limit=1").json()
    assert "data" not in everything["columns"]
    answer = client.get("/v1/query/payloads?select=data")
    assert answer.status_code == 400
    assert "data" not in answer.json()["accepted"]


def test_a_value_full_of_sql_matches_nothing_and_harms_nothing(client: AppClient) -> None:
    hostile = "x'%20OR%20'1'='1';%20DROP%20TABLE%20iovs;--"
    answer = client.get(f"/v1/query/iovs?tag_name=eq.{hostile}")
    assert answer.status_code == 200
    assert answer.json()["rows"] == []
    assert client.get("/v1/query/iovs?limit=1").json()["rows"], "iovs still has rows"
