"""The sample data set: same seed, same database; and realistic enough to test and benchmark on.

Determinism is checked on two fresh databases of the same backend; the shape of the data set on
the sample database every other test uses (built by `build_sample` with its default seed).
"""

from __future__ import annotations

import shutil
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, func, select

from origin.db import create_engines
from origin.query.sql import run_lumi_key
from origin.sample import HLT_GLOBAL_TAG, KIB, PROMPT_GLOBAL_TAG, SampleSummary, build_sample
from origin.schema import global_tag_map, global_tags, iovs, payloads, tags
from outpost.cli import main
from outpost.urls import INT64_MAX

MIB = 1024 * KIB


@pytest.fixture
def other_empty_db(empty_db: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A second fresh, migrated database on the same backend as `empty_db`."""
    if empty_db.startswith("sqlite"):
        path = tmp_path / "other.sqlite"
        shutil.copyfile(request.getfixturevalue("sqlite_templates")[False], path)
        return f"sqlite:///{path}"
    server = request.getfixturevalue("pg")
    template = request.getfixturevalue("pg_templates")[False]
    name = f"sample_{uuid.uuid4().hex[:16]}"
    server.execute(f"CREATE DATABASE {name} TEMPLATE {template}")
    return str(server.url(name))


def build(url: str, seed: int) -> SampleSummary:
    engines = create_engines(url)
    try:
        return build_sample(engines.writer, seed)
    finally:
        engines.dispose()


def contents(url: str) -> dict[str, Any]:
    """What the sample wrote, in a backend-independent, comparable form."""
    engines = create_engines(url)
    try:
        with engines.reader.connect() as conn:
            p, i, m = payloads.c, iovs.c, global_tag_map.c
            return {
                "payloads": sorted(conn.execute(select(p.hash, p.size, p.object_type)).all()),
                "iovs": sorted(
                    conn.execute(
                        select(i.tag_name, i.since, i.channel, i.payload_hash, i.insertion_time)
                    ).all()
                ),
                "tags": sorted(conn.execute(select(tags.c.name, tags.c.state)).all()),
                "map": sorted(conn.execute(select(m.global_tag, m.record, m.tag_name)).all()),
            }
    finally:
        engines.dispose()


@pytest.fixture
def sample(sample_db: str) -> Iterator[Connection]:
    """A read connection to the sample database."""
    engines = create_engines(sample_db)
    with engines.reader.connect() as conn:
        yield conn
    engines.dispose()


def mapped_tags(conn: Connection, global_tag: str) -> list[tuple[str, str, str, str]]:
    """(record, tag, time type, tag state) of every record the global tag maps."""
    m = global_tag_map.c
    rows = conn.execute(
        select(m.record, m.tag_name, tags.c.time_type, tags.c.state)
        .join_from(global_tag_map, tags, tags.c.name == m.tag_name)
        .where(m.global_tag == global_tag)
        .order_by(m.record)
    ).all()
    return [(r[0], r[1], r[2], r[3]) for r in rows]


# --- determinism ---------------------------------------------------------------------------


def test_same_seed_builds_identical_databases(empty_db: str, other_empty_db: str) -> None:
    first, second = build(empty_db, seed=7), build(other_empty_db, seed=7)
    assert first == second
    one, other = contents(empty_db), contents(other_empty_db)
    assert one == other
    assert first.iovs == len(one["iovs"])
    assert first.payloads == len(one["payloads"])
    assert first.payload_bytes == sum(size for _, size, _ in one["payloads"])
    assert first.tags == len(one["tags"])
    assert first.global_tags == 2


def test_different_seed_builds_different_payloads(empty_db: str, other_empty_db: str) -> None:
    build(empty_db, seed=1)
    build(other_empty_db, seed=2)
    one, other = contents(empty_db), contents(other_empty_db)
    hashes = {row[0] for row in one["payloads"]}
    assert hashes.isdisjoint(row[0] for row in other["payloads"])
    assert one["iovs"] != other["iovs"]


# --- what it holds -------------------------------------------------------------------------


def test_hlt_global_tag_maps_20_or_more_records_of_all_three_time_types(sample: Connection) -> None:
    mapped = mapped_tags(sample, HLT_GLOBAL_TAG)
    records = [record for record, *_ in mapped]
    assert len(records) == len(set(records)) >= 20
    assert {time_type for _, _, time_type, _ in mapped} == {"run", "run_lumi", "timestamp"}
    state = sample.scalar(select(global_tags.c.state).where(global_tags.c.name == HLT_GLOBAL_TAG))
    assert state == "open"


def test_every_hlt_record_has_conditions_from_the_first_run(sample: Connection) -> None:
    first_key = {"run": 1, "run_lumi": run_lumi_key(1, 1), "timestamp": INT64_MAX}
    for record, tag, time_type, _ in mapped_tags(sample, HLT_GLOBAL_TAG):
        first = sample.scalar(select(func.min(iovs.c.since)).where(iovs.c.tag_name == tag))
        assert first is not None and first <= first_key[time_type], record


def test_payload_sizes_span_one_kib_to_four_mib(sample: Connection) -> None:
    sizes = select(func.min(payloads.c.size), func.max(payloads.c.size))
    smallest, largest = sample.execute(sizes).one()
    assert KIB <= smallest <= 4 * KIB
    assert largest == 4 * MIB


def test_some_sinces_are_corrected(sample: Connection) -> None:
    insertions = Counter(
        sample.execute(select(iovs.c.tag_name, iovs.c.channel, iovs.c.since)).all()
    )
    corrected = [key for key, count in insertions.items() if count >= 2]
    assert corrected
    for tag, channel, since in corrected:  # a correction names other constants
        hashes = sample.scalars(
            select(iovs.c.payload_hash).where(
                iovs.c.tag_name == tag, iovs.c.channel == channel, iovs.c.since == since
            )
        ).all()
        assert len(set(hashes)) == len(hashes)


def test_prompt_global_tag_is_locked_over_locked_tags(sample: Connection) -> None:
    state = sample.scalar(
        select(global_tags.c.state).where(global_tags.c.name == PROMPT_GLOBAL_TAG)
    )
    assert state == "locked"
    mapped = mapped_tags(sample, PROMPT_GLOBAL_TAG)
    assert mapped
    assert {tag_state for *_, tag_state in mapped} == {"locked"}


# --- the command line ----------------------------------------------------------------------


def test_cli_db_sample_refuses_a_database_that_holds_tags(
    sample_db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    before = contents(sample_db)
    assert main(["db", "sample", "--db", sample_db, "--seed", "2"]) == 1
    assert "already holds tags" in capsys.readouterr().err
    assert contents(sample_db) == before


def test_cli_db_sample_fills_an_empty_database(
    empty_db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["db", "sample", "--db", empty_db]) == 0
    assert "sample data in" in capsys.readouterr().out
    names = {row[0] for row in contents(empty_db)["map"]}
    assert names == {HLT_GLOBAL_TAG, PROMPT_GLOBAL_TAG}
    assert main(["db", "sample", "--db", empty_db]) == 1
