"""`outpost db load`: a YAML or JSON description of conditions imported in one go.

The promise of `origin.load`: the whole file is parsed and every payload file read before
anything is written, so a mistake in the file fails the import and leaves the database as it was.
"""

from __future__ import annotations

import copy
import hashlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine, func, select
from support.origin import FakeClock, MakeClient

from origin.db import create_engines
from origin.load import LoadSummary, load_file, plan_file
from origin.schema import global_tag_map, global_tags, iovs, payloads, tags
from origin.writes import Writes
from outpost.cli import main
from outpost.errors import BadRequest, OutpostError

PED_A = b"EcalPedestals A " * 64
PED_B = b"EcalPedestals B " * 80
LASER = bytes(range(256)) * 3
HASH_A, HASH_B, HASH_LASER = (hashlib.sha256(d).hexdigest() for d in (PED_A, PED_B, LASER))

CONDITIONS = f"""
payloads:
  ped_a: {{file: blobs/ped_a.bin, object_type: EcalPedestals}}
  ped_b: {{file: blobs/ped_b.bin, object_type: EcalPedestals}}
  laser: {{file: laser.bin}}
tags:
  - name: EcalPedestals_v1_hlt
    time_type: run
    payload_type: EcalPedestals
    description: pedestals for the HLT
    iovs:
      - {{since: 1, payload: ped_a}}
      - {{since: 100, payload: ped_b}}
      - {{since: 100, payload: ped_a, channel: 3}}
  - name: EcalPedestals_prompt
    time_type: run
    payload_type: EcalPedestals
    iovs:
      - {{since: 1, payload: {HASH_B}}}
    lock: true
  - name: EcalLaser_v1
    time_type: timestamp
    payload_type: EcalLaser
globaltags:
  - name: TEST_HLT
    description: loaded from a file
    map:
      - {{record: EcalPedestalsRcd, label: "", tag: EcalPedestals_v1_hlt}}
      - {{record: EcalLaserRcd, tag: EcalLaser_v1}}
  - name: TEST_PROMPT
    state: locked
    map:
      - {{record: EcalPedestalsRcd, tag: EcalPedestals_prompt}}
"""
EXPECTED = LoadSummary(payloads=3, tags=3, iovs=4, global_tags=2)
TABLES = (payloads, tags, iovs, global_tags, global_tag_map)


def write_conditions(root: Path, document: Any = None, suffix: str = ".yaml") -> Path:
    """The payload files and a description of them (CONDITIONS unless `document` is given)."""
    (root / "blobs").mkdir(exist_ok=True)
    (root / "blobs" / "ped_a.bin").write_bytes(PED_A)
    (root / "blobs" / "ped_b.bin").write_bytes(PED_B)
    (root / "laser.bin").write_bytes(LASER)
    path = root / f"conditions{suffix}"
    if suffix == ".json":
        path.write_bytes(orjson.dumps(conditions() if document is None else document))
    else:
        path.write_text(CONDITIONS if document is None else yaml.safe_dump(document))
    return path


def conditions(**changes: Any) -> dict[str, Any]:
    """CONDITIONS as a document, with top-level sections replaced."""
    document: dict[str, Any] = yaml.safe_load(CONDITIONS)
    document.update(changes)
    return document


@pytest.fixture
def writes(empty_db: str) -> Iterator[Writes]:
    engines = create_engines(empty_db)
    yield Writes(engines.writer, FakeClock())
    engines.dispose()


@pytest.fixture
def unused_writes(tmp_path: Path) -> Iterator[Writes]:
    """Writes over a database without tables: any write would fail with a database error."""
    engine = create_engine(f"sqlite:///{tmp_path / 'no-tables.sqlite'}")
    yield Writes(engine, FakeClock())
    engine.dispose()


def counts(url: str) -> dict[str, int]:
    engines = create_engines(url)
    try:
        with engines.reader.connect() as conn:
            return {t.name: conn.scalar(select(func.count()).select_from(t)) or 0 for t in TABLES}
    finally:
        engines.dispose()


NOTHING = {t.name: 0 for t in TABLES}


# --- a good file ---------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_load_imports_payloads_tags_iovs_locks_and_global_tags(
    empty_db: str, writes: Writes, make_client: MakeClient, tmp_path: Path, suffix: str
) -> None:
    summary = load_file(write_conditions(tmp_path, suffix=suffix), writes)
    assert summary == EXPECTED
    client = make_client(empty_db)

    hlt = client.get("/v1/tags/EcalPedestals_v1_hlt/iovs").json()["iovs"]
    assert [(i["channel"], i["since"], i["payload"]) for i in hlt] == [
        (0, 1, HASH_A),
        (0, 100, HASH_B),
        (3, 100, HASH_A),
    ]
    prompt = client.get("/v1/tags/EcalPedestals_prompt").json()
    assert (prompt["state"], prompt["time_type"], prompt["description"]) == ("locked", "run", "")
    laser = client.get("/v1/tags/EcalLaser_v1").json()
    assert (laser["state"], laser["time_type"]) == ("open", "timestamp")

    states = {g["name"]: g["state"] for g in client.get("/v1/globaltags").json()["globaltags"]}
    assert states == {"TEST_HLT": "open", "TEST_PROMPT": "locked"}
    resolve = client.get("/v1/resolve/TEST_HLT?run=150").json()["records"]
    assert [(r["record"], r["tag"], r["channel"], r["payload"]) for r in resolve] == [
        ("EcalLaserRcd", "EcalLaser_v1", None, None),
        ("EcalPedestalsRcd", "EcalPedestals_v1_hlt", 0, HASH_B),
        ("EcalPedestalsRcd", "EcalPedestals_v1_hlt", 3, HASH_A),
    ]
    assert client.get("/v1/globaltags/TEST_HLT").json()["description"] == "loaded from a file"

    for digest, data in ((HASH_A, PED_A), (HASH_B, PED_B), (HASH_LASER, LASER)):
        assert client.get(f"/v1/payloads/{digest}").content == data
    kinds = client.get("/v1/query/payloads?select=hash,object_type&order=hash.asc").json()["rows"]
    assert sorted(map(tuple, kinds)) == sorted(
        [(HASH_A, "EcalPedestals"), (HASH_B, "EcalPedestals"), (HASH_LASER, "blob")]
    )


def test_load_with_only_payloads_stores_them(empty_db: str, writes: Writes, tmp_path: Path) -> None:
    path = write_conditions(tmp_path, {"payloads": {"laser": {"file": "laser.bin"}}})
    assert load_file(path, writes) == LoadSummary(payloads=1, tags=0, iovs=0, global_tags=0)
    assert counts(empty_db) == {**NOTHING, "payloads": 1}


# --- a broken file changes nothing ---------------------------------------------------------


def broken_documents() -> dict[str, dict[str, Any]]:
    document = conditions()
    missing_file = conditions(payloads={**document["payloads"], "gone": {"file": "gone.bin"}})
    lumi_tag = {**document["tags"][0], "name": "Ecal_x", "time_type": "lumi"}
    bad_time_type = conditions(tags=[*document["tags"], lumi_tag])
    unknown_name = conditions(
        tags=[{**document["tags"][0], "iovs": [{"since": 1, "payload": "ped_c"}]}]
    )
    return {
        "missing-payload-file": missing_file,
        "bad-time-type": bad_time_type,
        "unknown-payload-name": unknown_name,
    }


def test_file_with_a_mistake_raises_bad_request_and_writes_nothing(
    empty_db: str, writes: Writes, tmp_path: Path
) -> None:
    for name, document in broken_documents().items():
        path = write_conditions(tmp_path, document)
        with pytest.raises(BadRequest):
            load_file(path, writes)
        assert counts(empty_db) == NOTHING, name


FIRST_TAG: dict[str, Any] = yaml.safe_load(CONDITIONS)["tags"][0]


@pytest.mark.parametrize(
    "change",
    [
        {"globaltags": [{"name": "TEST_HLT", "map": [{"record": "R", "tag": "EcalPedestals_v2"}]}]},
        {"tags": [{**FIRST_TAG, "iovs": [{"since": 2**31, "payload": "ped_a"}]}]},
    ],
    ids=["global-tag-maps-a-misspelt-tag", "run-since-over-2**31-1"],
)
def test_file_failing_late_still_writes_nothing(
    empty_db: str, writes: Writes, tmp_path: Path, change: dict[str, Any]
) -> None:
    with pytest.raises(OutpostError):
        load_file(write_conditions(tmp_path, conditions(**change)), writes)
    assert counts(empty_db) == NOTHING


@pytest.mark.parametrize(
    "document",
    [
        ["payloads"],
        {"payloads": {}, "extra": []},
        {"payloads": [{"file": "laser.bin"}]},
        {"payloads": {"laser": "laser.bin"}},
        {"payloads": {"laser": {"object_type": "x"}}},
        {"tags": ["EcalLaser_v1"]},
        {"tags": [{"name": "EcalLaser_v1", "time_type": "timestamp"}]},
        {"tags": [{"name": "E", "time_type": "run", "payload_type": "P", "colour": "red"}]},
        {"tags": [{"name": "E", "time_type": "run", "payload_type": "P", "iovs": [1]}]},
        {"tags": [{**FIRST_TAG, "iovs": [{"since": -1, "payload": "ab" * 32}]}]},
        {"tags": [{**FIRST_TAG, "iovs": [{"since": 1, "payload": "ped_a", "chanel": 2}]}]},
        {"globaltags": [{"map": []}]},
        {"globaltags": ["TEST"]},
        {"globaltags": [{"name": "TEST", "map": [], "state": "frozen"}]},
    ],
    ids=[
        "top-level-list", "unknown-section", "payloads-list", "payload-not-mapping",
        "payload-without-file", "tag-not-mapping", "tag-without-payload-type",
        "tag-unknown-field", "iov-not-mapping", "iov-negative-since", "iov-unknown-field",
        "global-tag-without-name",
        "global-tag-not-mapping", "global-tag-bad-state",
    ],
)  # fmt: skip
def test_malformed_document_raises_bad_request_before_any_write(
    unused_writes: Writes, tmp_path: Path, document: Any
) -> None:
    with pytest.raises(BadRequest):
        load_file(write_conditions(tmp_path, document), unused_writes)


@pytest.mark.parametrize(
    ("name", "text"), [("bad.yaml", "tags: [unclosed"), ("bad.json", '{"tags": ')]
)
def test_file_that_does_not_parse_raises_bad_request(
    unused_writes: Writes, tmp_path: Path, name: str, text: str
) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(BadRequest, match=name):
        load_file(path, unused_writes)


# --- the command line ----------------------------------------------------------------------


def test_cli_db_load_imports_the_file_and_returns_0(
    empty_db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["db", "load", str(write_conditions(tmp_path)), "--db", empty_db]) == 0
    assert "loaded" in capsys.readouterr().out
    assert counts(empty_db) == {
        "payloads": 3,
        "tags": 3,
        "iovs": 4,
        "global_tags": 2,
        "global_tag_map": 3,
    }


def test_cli_db_load_of_a_broken_file_returns_1_and_says_why(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'cli.sqlite'}"
    document = conditions(payloads={"gone": {"file": "gone.bin"}})
    assert main(["db", "load", str(write_conditions(tmp_path, document)), "--db", url]) == 1
    assert "gone" in capsys.readouterr().err
    assert counts(url) == NOTHING


def test_cli_db_load_of_a_missing_file_returns_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'cli.sqlite'}"
    assert main(["db", "load", str(tmp_path / "missing.yaml"), "--db", url]) == 1
    assert "missing.yaml" in capsys.readouterr().err


# --- strict types: a file means what it says, or it is refused -------------------------------

TAG_TEMPLATE = """
payloads:
  ped_a: {{file: blobs/ped_a.bin}}
tags:
  - name: {name}
    time_type: run
    payload_type: EcalPedestals
    iovs:
      - since: {since}
        payload: {payload}
        channel: {channel}
    lock: {lock}
"""
TAG_SLOTS = {"name": "T", "since": "1", "payload": "ped_a", "channel": "0", "lock": "false"}


def tag_file(root: Path, **slots: str) -> Path:
    write_conditions(root)
    path = root / "strict.yaml"
    path.write_text(TAG_TEMPLATE.format(**{**TAG_SLOTS, **slots}))
    return path


def write_text(root: Path, name: str, text: str) -> Path:
    write_conditions(root)
    path = root / name
    path.write_text(text)
    return path


JSON_TAG: dict[str, Any] = {
    "name": "T",
    "time_type": "run",
    "payload_type": "P",
    "iovs": [{"since": 1, "payload": HASH_A}],
}


@pytest.mark.parametrize(
    ("slots", "where"),
    [
        ({"lock": "'false'"}, "tags[0]: lock='false' is not a boolean"),
        ({"lock": "no"}, "tags[0]: lock='no' is not a boolean"),
        ({"lock": "off"}, "tags[0]: lock='off' is not a boolean"),
        ({"since": "010"}, "tags[0]: iovs[0].since='010' is not an integer"),
        ({"since": "1:30"}, "tags[0]: iovs[0].since='1:30' is not an integer"),
        ({"since": "1_000"}, "tags[0]: iovs[0].since='1_000' is not an integer"),
        ({"channel": "0x1F"}, "tags[0]: iovs[0].channel='0x1F' is not an integer"),
        ({"since": "true"}, "tags[0]: iovs[0].since=True is not an integer"),
        ({"name": "1000"}, "tags[0]: tag.name=1000 is not a string"),
        ({"payload": "1" * 64}, "tags[0]: iovs[0].payload=" + "1" * 64),
    ],
    ids=[
        "lock-quoted-false", "lock-no", "lock-off", "since-octal", "since-sexagesimal",
        "since-underscore", "channel-hex", "since-bool", "name-number", "hash-number",
    ],
)  # fmt: skip
def test_yaml_1_1_readings_are_refused_naming_file_place_and_what_is_accepted(
    unused_writes: Writes, tmp_path: Path, slots: dict[str, str], where: str
) -> None:
    path = tag_file(tmp_path, **slots)
    with pytest.raises(BadRequest) as raised:
        load_file(path, unused_writes)
    assert raised.value.detail.startswith(f"{path}: {where}")
    assert raised.value.accepted


@pytest.mark.parametrize(
    ("document", "where"),
    [
        ({"tags": [{**JSON_TAG, "lock": "no"}]}, "tags[0]: lock='no' is not a boolean"),
        ({"tags": [{**JSON_TAG, "lock": 0}]}, "tags[0]: lock=0 is not a boolean"),
        (
            {"tags": [{**JSON_TAG, "iovs": [{"since": 1.0, "payload": HASH_A}]}]},
            "tags[0]: iovs[0].since=1.0 is not an integer",
        ),
        ({"tags": 0}, "tags must be a list"),
        ({"tags": [{**JSON_TAG, "iovs": {}}]}, "tags[0]: iovs must be a list"),
        ({"payloads": {"p": {"file": "laser.bin", "object_type": 7}}}, "payloads.p: file and"),
    ],
    ids=["lock-no", "lock-zero", "since-float", "tags-zero", "iovs-mapping", "object-type-int"],
)
def test_json_of_the_wrong_type_is_refused(
    unused_writes: Writes, tmp_path: Path, document: dict[str, Any], where: str
) -> None:
    path = write_conditions(tmp_path, document, suffix=".json")
    with pytest.raises(BadRequest) as raised:
        load_file(path, unused_writes)
    assert raised.value.detail.startswith(f"{path}: {where}")


@pytest.mark.parametrize(
    ("name", "text", "problem"),
    [
        ("twice.yaml", "tags:\n  - {name: A, name: B}", "duplicate key 'name'"),
        ("twice.json", '{"tags": [], "tags": [1]}', "duplicate keys ['tags']"),
        ("payloads.yaml", "payloads:\n  a: {file: laser.bin}\n  a: {file: laser.bin}", "'a'"),
        ("nan.json", '{"tags": [{"iovs": [{"since": NaN}]}]}', "NaN is not a JSON number"),
        ("alias.yaml", "tags:\n  - &t {name: A}\n  - *t", "anchors and aliases"),
        ("tagged.yaml", "tags: !!set {a}", "explicit tags"),
    ],
)
def test_duplicate_keys_aliases_and_tags_are_refused(
    unused_writes: Writes, tmp_path: Path, name: str, text: str, problem: str
) -> None:
    path = write_text(tmp_path, name, text)
    with pytest.raises(BadRequest, match=re.escape(problem)) as raised:
        load_file(path, unused_writes)
    assert str(path) in raised.value.detail


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_a_tag_or_global_tag_listed_twice_is_refused_and_nothing_written(
    empty_db: str, writes: Writes, tmp_path: Path, suffix: str
) -> None:
    document = conditions()
    twice_tag = conditions(tags=[*document["tags"], {**document["tags"][2], "description": "x"}])
    twice_gt = conditions(
        globaltags=[*document["globaltags"], copy.deepcopy(document["globaltags"][0])]
    )
    for changed, name in ((twice_tag, "EcalLaser_v1"), (twice_gt, "TEST_HLT")):
        with pytest.raises(BadRequest, match=f"lists \\['{name}'\\] more than once"):
            load_file(write_conditions(tmp_path, changed, suffix=suffix), writes)
        assert counts(empty_db) == NOTHING


def test_a_billion_laughs_file_is_refused_quickly_with_a_short_message(
    unused_writes: Writes, tmp_path: Path
) -> None:
    laughs = 'tags:\n  - &a [{name: "lol"}, {name: "lol"}, {name: "lol"}, {name: "lol"}]\n'
    for a, b in zip("abcdefgh", "bcdefghi", strict=False):
        laughs += f"  - &{b} [*{a}, *{a}, *{a}, *{a}, *{a}, *{a}, *{a}, *{a}, *{a}, *{a}]\n"
    path = write_text(tmp_path, "laughs.yaml", laughs)
    assert path.stat().st_size < 600
    with pytest.raises(BadRequest) as raised:
        load_file(path, unused_writes)
    assert len(raised.value.body()) < 2000


def test_an_all_zero_hash_is_a_hash_not_the_integer_zero_nor_a_payload_name(
    tmp_path: Path,
) -> None:
    zero = "0" * 64
    plan = plan_file(tag_file(tmp_path, payload=zero, since="100"))
    (tag,) = plan.tags
    assert [(i.since, i.payload, i.channel) for i in tag.iovs] == [(100, zero, 0)]


SINCE_SPELLINGS = st.one_of(
    st.integers(-3, 2**64).map(str),
    st.from_regex(r"[-+]?[0-9][0-9_:.eExob]{0,10}", fullmatch=True),
    st.sampled_from(["true", "no", "null", "~", "'12'", '"0"', ".inf", "0x10", "0o10", "1:30"]),
)
LOCK_SPELLINGS = st.sampled_from(
    ["true", "false", "True", "FALSE", "yes", "no", "on", "off", "0", "1", "null", "'false'"]
)
HASH_SPELLINGS = st.one_of(
    st.just("ped_a"),
    st.text("0123456789abcdefABCDEF", min_size=64, max_size=64),
    st.text("0123456789", min_size=63, max_size=65),
)
NAME_SPELLINGS = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.:+\-]{0,12}", fullmatch=True)


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    since=SINCE_SPELLINGS,
    channel=SINCE_SPELLINGS,
    lock=LOCK_SPELLINGS,
    payload=HASH_SPELLINGS,
    name=NAME_SPELLINGS,
)
@example(since="010", channel="0", lock="no", payload="0" * 64, name="T")
@example(since="1:30", channel="0", lock="false", payload="ped_a", name="T")
def test_a_loaded_yaml_value_is_exactly_what_was_written_or_the_file_is_refused(
    tmp_path: Path, since: str, channel: str, lock: str, payload: str, name: str
) -> None:
    """Whatever the spellings, a plan's integers are written in plain decimal in the file, its
    lock was `true`/`false`, its hash and name are the text as written; or the load fails with
    a 400 that names the file."""
    path = tag_file(tmp_path, since=since, channel=channel, lock=lock, payload=payload, name=name)
    try:
        plan = plan_file(path)
    except BadRequest as exc:
        assert str(path) in exc.detail
        return
    (tag,) = plan.tags
    (iov,) = tag.iovs
    assert str(iov.since) == since and str(iov.channel) == channel
    assert lock in ("true", "false") and tag.lock == (lock == "true")
    assert iov.payload == (HASH_A if payload == "ped_a" else payload.lower())
    assert tag.tag.name == name
