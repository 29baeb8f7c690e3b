"""The conditions database schema (SQLAlchemy Core), shared by the migrations and the queries.

Times (`created_at`, `modified_at`, `insertion_time`) are integers: microseconds since the Unix
epoch, UTC. Integers compare, index and round-trip identically on SQLite and PostgreSQL, which a
snapshot query ("the database as it was at T") depends on.

IOV keys (`since`) are int64: a run number for `run` tags, `(run << 32) | lumi` for `run_lumi`
tags, Unix seconds for `timestamp` tags.
"""

from __future__ import annotations

from typing import Final

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)

__all__ = [
    "GLOBAL_TAG_STATES",
    "changes",
    "feed_head",
    "TAG_STATES",
    "TIME_TYPES",
    "global_tag_map",
    "global_tags",
    "iovs",
    "metadata",
    "payloads",
    "runs",
    "sync_positions",
    "tags",
]

TIME_TYPES: Final = ("run", "run_lumi", "timestamp")
TAG_STATES: Final = ("open", "locked")
GLOBAL_TAG_STATES: Final = ("open", "locked")

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

payloads = Table(
    "payloads",
    metadata,
    Column("hash", String(64), primary_key=True),
    Column("size", BigInteger, nullable=False),
    Column("object_type", String(128), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    # Last: SQLite reads a row's columns in order, so a column after a large blob costs a walk
    # through the blob's overflow pages.
    Column("data", LargeBinary, nullable=False),
)

tags = Table(
    "tags",
    metadata,
    Column("name", String(128), primary_key=True),
    Column("time_type", String(16), nullable=False),
    Column("payload_type", String(128), nullable=False),
    Column("description", Text, nullable=False, default=""),
    Column("state", String(16), nullable=False, default="open"),
    Column("created_at", BigInteger, nullable=False),
    Column("modified_at", BigInteger, nullable=False),
    CheckConstraint("time_type IN ('run', 'run_lumi', 'timestamp')", name="time_type"),
    CheckConstraint("state IN ('open', 'locked')", name="state"),
)

iovs = Table(
    "iovs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("tag_name", String(128), ForeignKey("tags.name"), nullable=False),
    Column("channel", BigInteger, nullable=False, default=0),
    Column("since", BigInteger, nullable=False),
    Column("insertion_time", BigInteger, nullable=False),
    Column("payload_hash", String(64), ForeignKey("payloads.hash"), nullable=False),
    CheckConstraint("since >= 0", name="since"),
    Index(None, "tag_name", "channel", "since", "insertion_time", unique=True),
    Index(None, "tag_name", "insertion_time"),
    Index(None, "insertion_time"),
)

global_tags = Table(
    "global_tags",
    metadata,
    Column("name", String(128), primary_key=True),
    Column("state", String(16), nullable=False, default="open"),
    Column("description", Text, nullable=False, default=""),
    Column("created_at", BigInteger, nullable=False),
    Column("modified_at", BigInteger, nullable=False),
    CheckConstraint("state IN ('open', 'locked')", name="state"),
)

# A global tag's map is versioned like IOVs: a PUT inserts the new map with one insertion time
# and a tombstone (tag_name NULL) for every record it drops, so a snapshot query can still see
# the map as it was.
global_tag_map = Table(
    "global_tag_map",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("global_tag", String(128), ForeignKey("global_tags.name"), nullable=False),
    Column("record", String(128), nullable=False),
    Column("label", String(128), nullable=False, default=""),
    Column("tag_name", String(128), ForeignKey("tags.name"), nullable=True),
    Column("insertion_time", BigInteger, nullable=False),
    Index(None, "global_tag", "record", "label", "insertion_time", unique=True),
)

# The change feed (`origin.feed`): `feed_head` is one row holding the last position handed out;
# every writing transaction increments it (so positions follow commit order) and records its
# entries in `changes`, the JSON each reader of `/v1/changes` receives (without its `seq`).
feed_head = Table(
    "feed_head",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("seq", BigInteger, nullable=False),
    CheckConstraint("id = 1", name="one_row"),
)

changes = Table(
    "changes",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("time", BigInteger, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("subject", String(128), nullable=False),
    Column("entry", Text, nullable=False),
    Column("who", String(128)),  # the writer's token name (the audit trail); None before 0003
    CheckConstraint(
        "kind IN ('payload', 'tag', 'iovs', 'lock', 'globaltag', 'run')", name="kind"
    ),  # 'run' since 0004
    Index(None, "subject", "seq"),  # a tag's or a global tag's history
)

# Run records (`POST /v1/runs/{run}`): what run control attests a run was taken with, written
# once and never changed. `snapshot` is the time a resolve of (globaltag, run, lumi) is pinned
# to in order to give back exactly `records` (whose `outpost.conditions` digest is `digest`);
# `records` and `attestation` are JSON text.
runs = Table(
    "runs",
    metadata,
    Column("run", BigInteger, primary_key=True, autoincrement=False),
    Column("globaltag", String(128), nullable=False),
    Column("lumi", BigInteger, nullable=False),
    Column("digest", String(64), nullable=False),
    Column("snapshot", BigInteger, nullable=False),
    Column("records", Text, nullable=False),
    Column("attestation", Text, nullable=False),
    Column("who", String(128)),  # the run-control token's name
    Column("created_at", BigInteger, nullable=False),
)

# Where `outpost sync --follow` stands in each source's change feed (`outpost.sync`): the last
# source position whose changes this database holds, written in the transaction that applies
# them, so a replica resumes where it stopped after a restart of either side or a broken link.
sync_positions = Table(
    "sync_positions",
    metadata,
    Column("source", String(512), primary_key=True),  # the source's URL, as given to the sync
    Column("seq", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
)
