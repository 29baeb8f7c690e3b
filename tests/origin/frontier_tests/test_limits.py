"""Anonymous Frontier SQL is bounded: payloads and SQL text per request, one deadline, the row cap
asked of the database, SQLite's longest value, and a bulkhead that turns requests away when full.

(The memory and temp-file figures of real origin processes are in test_resources.py.)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import httpx
import orjson
import pytest
from sqlalchemy import event
from support.abuse import parse_heavy_sql
from support.fnkit import HEADERS, frontier_url, parse_answer
from support.origin import MakeClient

from origin.db import Engines, create_engines
from origin.frontier.guard import prepare
from origin.frontier.limits import Deadline
from origin.frontier.run import FrontierDatabase, Plan
from origin.query.table import default_table_access

CROSS_JOIN = "SELECT a.tag_name || b.tag_name AS s FROM iovs a, iovs b ORDER BY s DESC"
# 221^4 rows: minutes of work, so only a deadline ends it
SLOW = "SELECT count(*) FROM iovs a, iovs b, iovs c, iovs d WHERE a.since > c.since + d.id"


@pytest.fixture
def engines(sample_db: str) -> Iterator[Engines]:
    engines = create_engines(sample_db)
    yield engines
    engines.dispose()


def errors(response: httpx.Response) -> tuple[str | None, list[str | None]]:
    """(global error, each payload's error message) of a Frontier answer."""
    assert response.status_code == 200, response.text
    answer = parse_answer(response.content)
    return answer.global_error, [p.message if p.error else None for p in answer.payloads]


def test_the_row_cap_is_asked_of_the_database(
    engines: Engines, sample_db: str, make_client: MakeClient
) -> None:
    client = make_client(sample_db, engines=engines, query_max_rows=5)
    statements: list[str] = []
    event.listen(engines.frontier, "before_cursor_execute", lambda *a: statements.append(str(a[2])))
    _, messages = errors(client.get(frontier_url(CROSS_JOIN), headers=HEADERS))
    assert messages == ["outpost the query returns more than 5 rows"]
    assert any(s.endswith("LIMIT 6") for s in statements), statements  # not 48,841 rows
    _, ok = errors(client.get(frontier_url("SELECT name FROM tags LIMIT 5"), headers=HEADERS))
    assert ok == [None]  # exactly the cap is an answer


def _database(engines: Engines) -> FrontierDatabase:
    return FrontierDatabase(
        engines.frontier,
        default_table_access(),
        max_bytes=1 << 20,
        statement_timeout_ms=120_000,  # far longer than the request's own deadline below
    )


def _plan(database: FrontierDatabase, sql: str) -> Plan:
    return Plan(prepared=prepare(sql, (), dialect=database.dialect, schema=database.schema))


def test_the_request_deadline_bounds_every_payload_together(engines: Engines) -> None:
    database = _database(engines)
    plans = [_plan(database, "SELECT count(*) FROM tags"), _plan(database, SLOW)]
    started = time.monotonic()
    execution = database.execute(plans, lambda _: False, Deadline.after(1.0, started))
    elapsed = time.monotonic() - started
    assert execution.outcomes[0].error is None
    assert "canceling statement due to statement timeout" in str(execution.outcomes[1].error)
    assert elapsed < 10, elapsed  # the request's 1 s, not the statement timeout's 120 s


def test_a_request_past_its_deadline_runs_no_more_payloads(engines: Engines) -> None:
    database = _database(engines)
    plans = [_plan(database, "SELECT count(*) FROM tags")] * 3
    past = Deadline.after(0.5, time.monotonic() - 1)
    execution = database.execute(plans, lambda _: False, past)
    assert len(execution.outcomes) == 1
    assert "statement timeout" in str(execution.outcomes[0].error)


def test_more_payloads_than_the_cap_is_a_global_error(
    sample_sqlite: str, make_client: MakeClient
) -> None:
    client = make_client(sample_sqlite, frontier_max_payloads=3)
    query = "SELECT count(*) FROM tags"
    assert errors(client.get(frontier_url(*[query] * 3), headers=HEADERS)) == (None, [None] * 3)
    message, payloads = errors(client.get(frontier_url(*[query] * 4), headers=HEADERS))
    assert message is not None and "more than 3 payloads in one request" in message
    assert payloads == []


def test_the_sql_of_all_payloads_together_is_bounded_before_parsing(
    sample_sqlite: str, make_client: MakeClient
) -> None:
    client = make_client(sample_sqlite, frontier_max_sql_bytes=1000)
    sql = parse_heavy_sql(600)
    assert errors(client.get(frontier_url(sql), headers=HEADERS)) == (None, [None])
    message, payloads = errors(client.get(frontier_url(sql, sql), headers=HEADERS))
    assert message is not None and "at most 1000 bytes are accepted" in message
    assert payloads == []


def test_a_value_longer_than_sqlites_limit_is_a_payload_error(
    sample_sqlite: str, make_client: MakeClient
) -> None:
    client = make_client(sample_sqlite, frontier_max_value_bytes=1024 * 1024)
    too_long = "SELECT length(hex(data)) FROM payloads WHERE size = 4194304"
    _, messages = errors(client.get(frontier_url(too_long), headers=HEADERS))
    assert messages == ["outpost string or blob too big"]
    fits = "SELECT length(hex(data)) FROM payloads WHERE size < 100000 LIMIT 1"
    assert errors(client.get(frontier_url(fits), headers=HEADERS)) == (None, [None])


def test_a_full_bulkhead_answers_503_at_once_and_v1_reads_go_on(
    sample_db: str, make_client: MakeClient
) -> None:
    client = make_client(
        sample_db, frontier_concurrency=1, frontier_queue_ms=100, statement_timeout_ms=4000
    )
    running = threading.Thread(
        target=client.get, args=(frontier_url(SLOW),), kwargs={"headers": HEADERS}
    )
    running.start()
    try:
        time.sleep(0.5)  # the slow query holds the only slot
        started = time.monotonic()
        turned_away = client.get(frontier_url("SELECT count(*) FROM tags"), headers=HEADERS)
        assert time.monotonic() - started < 2
        assert turned_away.status_code == 503
        assert turned_away.headers["retry-after"] == "1"
        body = orjson.loads(turned_away.content)
        assert body["error"] == "service unavailable"
        assert "Frontier query slots are busy" in body["detail"]
        started = time.monotonic()
        assert client.get("/v1/globaltags").status_code == 200
        assert time.monotonic() - started < 2  # not behind the Frontier query
    finally:
        running.join()
    assert client.get(frontier_url("SELECT count(*) FROM tags"), headers=HEADERS).status_code == 200
