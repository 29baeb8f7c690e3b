"""The conditions digest (`outpost.conditions`) and the attestation tally (`proxy.core.attest`):
what a cache holds becomes a digest, the digests of a subtree are counted on the way up, and
the records a differing cache holds are named."""

from __future__ import annotations

import gzip
import hashlib
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from outpost.conditions import conditions_digest, differences, payload_map
from proxy.core.attest import (
    DETAILED_DIGESTS,
    NOT_HELD,
    UNREADABLE,
    Tally,
    TallyError,
    decode_body,
    held_state,
    named_payloads,
)

A, B, C = (hashlib.sha256(x).hexdigest() for x in (b"a", b"b", b"c"))


def record(name: str, payload: str | None, channel: int = 0, since: int = 1) -> dict[str, Any]:
    return {
        "record": name,
        "label": "",
        "tag": f"{name}_v1",
        "time_type": "run",
        "channel": channel,
        "since": since,
        "until": None,
        "payload": payload,
        "size": None if payload is None else 1,
    }


RECORDS = [record("EcalPedestalsRcd", A), record("HcalGainsRcd", B), record("DtRcd", None)]
BODY = orjson.dumps({"globaltag": "GT", "run": 5, "lumi": 1, "records": RECORDS})
ALL_HELD = {A: A, B: B}


def test_the_digest_depends_on_the_records_not_their_order_or_extra_fields() -> None:
    shuffled = [{**r, "extra": 1} for r in reversed(RECORDS)]
    assert conditions_digest(shuffled) == conditions_digest(RECORDS)
    corrected = [record("EcalPedestalsRcd", C), *RECORDS[1:]]
    assert conditions_digest(corrected) != conditions_digest(RECORDS)
    moved = [record("EcalPedestalsRcd", A, since=2), *RECORDS[1:]]
    assert conditions_digest(moved) != conditions_digest(RECORDS)


@given(st.permutations(RECORDS))
def test_any_order_of_the_records_has_one_digest(records: list[dict[str, Any]]) -> None:
    assert conditions_digest(records) == conditions_digest(RECORDS)


def test_a_cache_holding_every_payload_has_the_origins_digest() -> None:
    state = held_state(BODY, ALL_HELD)
    assert state.digest == conditions_digest(RECORDS)
    assert state.held == payload_map(RECORDS)


@pytest.mark.parametrize(
    ("held", "found"),
    [({A: A}, "not held"), ({A: A, B: C}, "corrupt bytes")],
    ids=["missing", "corrupt"],
)
def test_a_missing_or_corrupt_payload_changes_the_digest_and_names_the_record(
    held: dict[str, str], found: str
) -> None:
    state = held_state(BODY, held)
    assert state.digest != conditions_digest(RECORDS)
    [difference] = differences(payload_map(RECORDS), state.held)
    assert difference.key == "HcalGainsRcd//0"
    assert found in difference.describe()


def test_no_resolve_answer_and_an_unreadable_one_are_their_own_digests() -> None:
    assert held_state(None, {}).digest == NOT_HELD
    for body in (b"", b"{", b'{"records": 3}', b"[1]", b'{"records": [1]}'):
        assert held_state(body, {}).digest == UNREADABLE


def test_named_payloads_are_the_hashes_in_order_once_and_never_anything_else() -> None:
    body = orjson.dumps({"records": [*RECORDS, record("X", A), record("Y", "../../etc")]})
    assert named_payloads(body) == [A, B]
    assert named_payloads(b"nonsense") is None


def test_stored_codings_are_decoded_and_a_bomb_or_garbage_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert decode_body(gzip.compress(BODY), b"gzip") == BODY
    assert decode_body(BODY, None) == BODY
    assert decode_body(BODY, b"identity") == BODY
    assert decode_body(BODY, b"br") is None
    assert decode_body(b"not gzip", b"gzip") is None
    assert decode_body(gzip.compress(BODY)[:-8], b"gzip") is None  # cut short
    monkeypatch.setattr("proxy.core.attest.MAX_DECODED_BYTES", 1000)
    assert decode_body(gzip.compress(b"\0" * 100_000), b"gzip") is None


def test_agreeing_caches_are_only_counted_and_differing_ones_named_with_their_records() -> None:
    expected = conditions_digest(RECORDS)
    node = Tally(expected)
    node.add("node-1", held_state(BODY, ALL_HELD))
    site = Tally(expected)
    site.add("site", held_state(BODY, ALL_HELD))
    site.add("node-2", held_state(BODY, {A: A}))
    site.add("node-3", held_state(None, {}))
    site.merge(orjson.loads(orjson.dumps(node.to_json())))
    site.fail({"name": "node-4", "url": "http://n4", "error": "ConnectionRefused"})
    answer = site.to_json()
    assert answer["answered"] == 4 and answer["agree"] == 2
    assert answer["digests"][expected] == 2 and sum(answer["digests"].values()) == 4
    by_cache = {tuple(g["caches"]): g for g in answer["differ"]}
    assert set(by_cache) == {("node-2",), ("node-3",)}
    assert by_cache[("node-2",)]["held"]["HcalGainsRcd//0"] == "missing:" + B
    assert by_cache[("node-3",)]["digest"] == NOT_HELD
    assert [f["name"] for f in answer["failed"]] == ["node-4"]
    assert "node-1" not in orjson.dumps(answer).decode()  # an agreeing cache is a count


def test_caches_holding_the_same_wrong_conditions_share_one_group() -> None:
    expected = conditions_digest(RECORDS)
    tally = Tally(expected)
    for index in range(50):
        tally.add(f"node-{index:02}", held_state(BODY, {A: A}))
    [group] = tally.to_json()["differ"]
    assert len(group["caches"]) == 50 and group["held"] is not None


def test_records_are_shown_for_a_bounded_number_of_distinct_wrong_digests() -> None:
    tally = Tally(conditions_digest(RECORDS))
    for index in range(DETAILED_DIGESTS + 5):
        other = hashlib.sha256(b"%d" % index).hexdigest()  # each node holds another correction
        body = orjson.dumps({"records": [RECORDS[0], record("HcalGainsRcd", other)]})
        tally.add(f"node-{index}", held_state(body, {A: A, other: other}))
    groups = tally.to_json()["differ"]
    assert len(groups) == DETAILED_DIGESTS + 5
    assert sum(g["held"] is not None for g in groups) == DETAILED_DIGESTS


@pytest.mark.parametrize(
    "answer",
    [
        None,
        [],
        "text",
        {},
        {"digests": {"d": -1}, "differ": [], "failed": []},
        {"digests": {"d": True}, "differ": [], "failed": []},
        {"digests": {"d": 1}, "differ": {}, "failed": []},
        {"digests": {"d": 1}, "differ": [{"digest": "x", "caches": "n"}], "failed": []},
        {"digests": {"d": 1}, "differ": [{"digest": "x", "caches": [], "held": 3}], "failed": []},
        {"digests": {"d": 1}, "differ": [], "failed": [{"name": 1}]},
        {"digests": {"d": 1}, "differ": [], "failed": None},
    ],
)
def test_a_child_answer_that_is_not_a_tally_is_refused_and_merges_nothing(answer: object) -> None:
    tally = Tally("d")
    tally.add("site", held_state(None, {}))
    before = tally.to_json()
    with pytest.raises(TallyError):
        tally.merge(answer)
    assert tally.to_json() == before
