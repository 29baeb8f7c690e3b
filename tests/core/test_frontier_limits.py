"""What one anonymous Frontier request may cost: the pure limits (origin.frontier.limits, guard)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from origin.frontier.guard import MAX_EXPANSION, MAX_ROW_EXPANSION, Refused, prepare
from origin.frontier.limits import Deadline, capped_sql, check_sql_budget
from origin.frontier.params import MAX_PAYLOADS, FrontierError, parse_commands
from origin.frontier.run import schema_of
from origin.query.table import default_table_access

SCHEMA = schema_of(default_table_access())
COMMAND = "type=frontier_request:1:DEFAULT&encoding=BLOB&p1=eJwLdvR1dVEwBAAG0QG9"


@given(st.lists(st.text(max_size=40), max_size=8), st.integers(min_value=0, max_value=200))
def test_the_sql_budget_counts_every_payloads_bytes(texts: list[str], limit: int) -> None:
    total = sum(len(t.encode()) for t in texts)
    if total > limit:
        with pytest.raises(FrontierError, match=f"at most {limit} bytes"):
            check_sql_budget(texts, limit)
    else:
        check_sql_budget(texts, limit)


@given(st.integers(min_value=1, max_value=80), st.integers(min_value=1, max_value=64))
def test_payloads_beyond_the_cap_are_a_global_error(count: int, cap: int) -> None:
    raw = "&".join([COMMAND] * count)
    if count > cap:
        with pytest.raises(FrontierError, match=f"more than {cap} payloads"):
            parse_commands(raw, cap)
    else:
        assert len(parse_commands(raw, cap)) == count


def test_the_default_payload_cap_is_what_frontier_client_sends() -> None:
    assert MAX_PAYLOADS == 32
    parse_commands("&".join([COMMAND] * 32))
    with pytest.raises(FrontierError):
        parse_commands("&".join([COMMAND] * 33))


@given(st.integers(min_value=0, max_value=10**6))
def test_the_capped_statement_asks_for_one_row_more_than_the_cap(cap: int) -> None:
    capped = capped_sql("SELECT name FROM tags ORDER BY name", cap)
    assert capped.startswith("SELECT * FROM (SELECT name FROM tags ORDER BY name) AS ")
    assert capped.endswith(f" LIMIT {cap + 1}")


@given(
    st.floats(min_value=0.001, max_value=100),
    st.floats(min_value=0, max_value=200),
)
def test_one_deadline_counts_down_from_the_start_of_the_request(
    seconds: float, elapsed: float
) -> None:
    deadline = Deadline.after(seconds, now=1000.0)
    now = 1000.0 + elapsed
    assert deadline.passed(now) == (elapsed >= seconds)
    assert deadline.remaining_ms(now) >= 1  # never 0: PostgreSQL reads 0 as no timeout
    if not deadline.passed(now):
        assert deadline.remaining_ms(now) <= int(seconds * 1000) + 1
    assert "statement timeout" in deadline.message()


@pytest.mark.parametrize("dialect", ["sqlite", "postgres"])
@given(st.integers(min_value=0, max_value=8))
def test_a_value_may_be_doubled_by_hex_at_most_twice(dialect: str, depth: int) -> None:
    sql = f"SELECT length({'hex(' * depth}data{')' * depth}) FROM payloads"  # noqa: S608
    if 2**depth > MAX_EXPANSION:
        with pytest.raises(Refused, match=f"expands a value {2**depth} times"):
            prepare(sql, (), dialect=dialect, schema=SCHEMA)
    else:
        prepare(sql, (), dialect=dialect, schema=SCHEMA)


@pytest.mark.parametrize("dialect", ["sqlite", "postgres"])
@given(st.integers(min_value=1, max_value=10), st.sampled_from(["||", "concat"]))
def test_concatenation_adds_up_its_operands(dialect: str, count: int, how: str) -> None:
    parts = ["a.data", "b.hash"] * count
    joined = " || ".join(parts[:count]) if how == "||" else f"concat({', '.join(parts[:count])})"
    sql = f"SELECT {joined} FROM payloads a, payloads b"  # noqa: S608 (checked, not run)
    if count > MAX_EXPANSION:
        with pytest.raises(Refused, match="expands a value"):
            prepare(sql, (), dialect=dialect, schema=SCHEMA)
    else:
        prepare(sql, (), dialect=dialect, schema=SCHEMA)


@given(st.integers(min_value=1, max_value=40))
def test_a_row_may_hold_at_most_so_many_expanded_values(columns: int) -> None:
    sql = f"SELECT {', '.join(['hex(hex(data))'] * columns)} FROM payloads"  # noqa: S608
    if 4 * columns > MAX_ROW_EXPANSION:
        with pytest.raises(Refused, match="a row of the statement"):
            prepare(sql, (), dialect="sqlite", schema=SCHEMA)
    else:
        prepare(sql, (), dialect="sqlite", schema=SCHEMA)


def test_expansion_is_counted_in_every_clause_not_only_the_columns() -> None:
    with pytest.raises(Refused, match="expands a value 8 times"):
        prepare(
            "SELECT hash FROM payloads WHERE length(hex(hex(hex(data)))) > 0",
            (),
            dialect="sqlite",
            schema=SCHEMA,
        )
