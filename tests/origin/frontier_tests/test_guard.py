"""The SQL guard on its own: what it runs, what it refuses, how it binds (both dialects)."""

from __future__ import annotations

import pytest

from origin.frontier.guard import Refused, prepare
from origin.frontier.run import schema_of
from origin.query.table import default_table_access

SCHEMA = schema_of(default_table_access())
DIALECTS = ["sqlite", "postgres"]


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize(
    ("sql", "tables"),
    [
        ("SELECT name FROM tags", {"tags"}),
        ("select NAME from TAGS where STATE = 'open'", {"tags"}),
        ("SELECT t.name, i.since FROM tags t JOIN iovs i ON i.tag_name = t.name", {"tags", "iovs"}),
        ("SELECT name FROM tags WHERE name IN (SELECT tag_name FROM iovs)", {"tags", "iovs"}),
        ("SELECT * FROM (SELECT since FROM iovs) AS sqlite_master", {"iovs"}),
        (
            "WITH a AS (SELECT since FROM iovs), b AS (SELECT since FROM a) SELECT * FROM b",
            {"iovs"},
        ),
        ("WITH a AS (SELECT 1 AS x) SELECT x FROM a UNION SELECT 2", set()),
        ("SELECT since FROM iovs UNION ALL SELECT since FROM iovs EXCEPT SELECT 1", {"iovs"}),
        (
            "SELECT tag_name, count(*), max(since), row_number() OVER (ORDER BY tag_name)"
            " FROM iovs GROUP BY tag_name HAVING count(*) > 1 ORDER BY 1 LIMIT 3",
            {"iovs"},
        ),
        (
            "SELECT CASE WHEN state = 'open' THEN 1 ELSE 0 END, coalesce(description, ''),"
            " upper(name), length(name), substr(name, 1, 3), abs(-1), round(1.5),"
            " CAST(created_at AS TEXT), CAST('1' AS BIGINT), CAST(1 AS REAL)"
            " FROM tags",
            {"tags"},
        ),
        ("SELECT hash, data FROM payloads WHERE hash = 'x'", {"payloads"}),
        ("SELECT 1", set()),
        ("SELECT 1;", set()),
        ("  SELECT 1\n", set()),
    ],
)
def test_reads_of_the_allow_list_run(dialect: str, sql: str, tables: set[str]) -> None:
    assert prepare(sql, [], dialect=dialect, schema=SCHEMA).tables == tables


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize(
    "sql",
    [
        "INSERT INTO tags VALUES ('x')",
        "UPDATE tags SET state = 'locked'",
        "DELETE FROM tags",
        "DROP TABLE tags",
        "ALTER TABLE tags ADD COLUMN x INT",
        "CREATE TABLE x AS SELECT * FROM tags",
        "TRUNCATE TABLE tags",
        "PRAGMA writable_schema = ON",
        "ATTACH DATABASE 'x' AS y",
        "VACUUM",
        "BEGIN",
        "SET search_path TO pg_catalog",
        "COPY tags TO '/tmp/x'",
        "SELECT 1; SELECT 2",
        "SELECT * FROM tags; DELETE FROM tags",
        "",
        ";",
        "SELECT * INTO t2 FROM tags",
        "SELECT * FROM tags FOR UPDATE",
        "SELECT * FROM tags FOR SHARE",
        "SELECT * FROM main.tags",
        "SELECT * FROM public.tags",
        "SELECT * FROM sqlite_master",
        "SELECT * FROM sqlite_schema",
        "SELECT * FROM sqlite_temp_master",
        "SELECT * FROM pg_class",
        "SELECT * FROM pg_catalog.pg_authid",
        "SELECT * FROM information_schema.columns",
        "SELECT name FROM tags WHERE EXISTS (SELECT 1 FROM pg_stat_activity)",
        "SELECT name FROM tags, LATERAL (SELECT 1 FROM pg_roles) r",
        "SELECT (SELECT sql FROM sqlite_master LIMIT 1)",
        "SELECT * FROM tags UNION SELECT * FROM sqlite_master",
        "WITH x AS (SELECT * FROM x) SELECT * FROM x",
        "WITH b AS (SELECT * FROM a), a AS (SELECT 1) SELECT * FROM b",
        "WITH RECURSIVE r AS (SELECT 1 UNION ALL SELECT 1 FROM r) SELECT * FROM r",
        "WITH d AS (DELETE FROM tags RETURNING *) SELECT * FROM d",
        "SELECT * FROM (WITH t AS (SELECT 1) SELECT * FROM t) s",
        "SELECT * FROM tags WHERE name = (WITH t AS (SELECT 'x') SELECT * FROM t)",
        "SELECT load_extension('x')",
        "SELECT readfile('/etc/passwd')",
        "SELECT pg_read_file('/etc/passwd')",
        "SELECT pg_ls_dir('.')",
        "SELECT lo_import('/etc/passwd')",
        "SELECT set_config('statement_timeout', '0', false)",
        "SELECT current_setting('data_directory')",
        "SELECT nextval('s')",
        "SELECT query_to_xml('select * from pg_authid', true, true, '')",
        "SELECT dblink('x', 'select 1')",
        "SELECT pg_sleep(10)",
        "SELECT randomblob(1000000000)",
        "SELECT zeroblob(1000000000)",
        "SELECT * FROM generate_series(1, 10)",
        "SELECT * FROM json_each('[1]')",
        "SELECT $1",
        "SELECT :name",
        "SELECT @v",
        "SELECT ?1",
        "SELECT __outpost_bind_0__",
        "SELECT CAST('pg_authid' AS regclass)",
        "SELECT 'pg_authid'::regclass",
        "SELECT CAST(name AS mytype) FROM tags",
        "SELECT CAST('[1]' AS json)",
    ],
)
def test_everything_else_is_refused(dialect: str, sql: str) -> None:
    with pytest.raises(Refused):
        prepare(sql, [], dialect=dialect, schema=SCHEMA)


def test_binds_follow_their_markers_when_sqlglot_reorders_the_sql() -> None:
    sql = "SELECT name FROM tags WHERE state = ? LIMIT ?, ?"  # SQLite: LIMIT offset, count
    prepared = prepare(sql, ["open", "2", "10"], dialect="sqlite", schema=SCHEMA)
    assert prepared.sql == "SELECT name FROM tags WHERE state = ? LIMIT ? OFFSET ?"
    assert prepared.params == ("open", "10", "2")


@pytest.mark.parametrize(
    ("dialect", "expected"),
    [
        ("sqlite", "SELECT name FROM tags WHERE name LIKE 'a%' AND state = ?"),
        ("postgres", "SELECT name FROM tags WHERE name LIKE 'a%%' AND state = %s"),
    ],
)
def test_driver_markers_and_percent_signs(dialect: str, expected: str) -> None:
    sql = "SELECT name FROM tags WHERE name LIKE 'a%' AND state = ?"
    prepared = prepare(sql, ["open"], dialect=dialect, schema=SCHEMA)
    assert (prepared.sql, prepared.params) == (expected, ("open",))


@pytest.mark.parametrize("dialect", DIALECTS)
def test_a_question_mark_in_a_literal_is_not_a_marker(dialect: str) -> None:
    prepared = prepare(
        "SELECT 'why?' FROM tags WHERE name = ?", ["x"], dialect=dialect, schema=SCHEMA
    )
    assert prepared.params == ("x",) and "'why?'" in prepared.sql


@pytest.mark.parametrize("dialect", DIALECTS)
def test_marker_and_value_counts_must_agree(dialect: str) -> None:
    with pytest.raises(Refused, match="2 bind markers but 1 values"):
        prepare(
            "SELECT 1 FROM tags WHERE name = ? OR name = ?", ["a"], dialect=dialect, schema=SCHEMA
        )
    with pytest.raises(Refused, match="0 bind markers but 1 values"):
        prepare("SELECT 1", ["a"], dialect=dialect, schema=SCHEMA)


def test_sqlite_output_types_come_from_the_schema() -> None:
    prepared = prepare(
        "SELECT i.id, i.since, t.name, p.data, count(*), NULL FROM iovs i"
        " JOIN tags t ON t.name = i.tag_name JOIN payloads p ON p.hash = i.payload_hash"
        " GROUP BY i.id, i.since, t.name, p.data",
        [],
        dialect="sqlite",
        schema=SCHEMA,
        with_types=True,
    )
    assert prepared.types == (
        "NUMBER(10)",
        "NUMBER(20)",
        "VARCHAR2",
        "BLOB",
        "NUMBER(20)",
        "VARCHAR2",
    )


@pytest.mark.parametrize("dialect", DIALECTS)
def test_statements_that_would_cost_the_parser_too_much_are_refused(dialect: str) -> None:
    with pytest.raises(Refused, match="longer than 20000 tokens"):
        prepare("SELECT " + "+".join(["(1)"] * 6000), [], dialect=dialect, schema=SCHEMA)
    with pytest.raises(Refused, match="nested too deeply"):
        prepare("SELECT " + "(" * 5000 + "1" + ")" * 5000, [], dialect=dialect, schema=SCHEMA)
