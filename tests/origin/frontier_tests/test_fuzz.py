"""Random SQL in p1 and random Frontier parameters never get a server error, nor write anything.

A Frontier answer is HTTP 200 whatever went wrong (the error is in the envelope), 304, or a JSON
4xx for what is not a Frontier request at all (a URL over the limit); never a 5xx.
"""

from __future__ import annotations

import string
from collections.abc import Callable

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.asgi import AppClient
from support.fnkit import HEADERS, encode_query, parse_answer

FUZZ = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

WORDS = [
    "SELECT", "FROM", "WHERE", "AND", "OR", "NOT", "NULL", "IN", "AS", "ON", "JOIN", "UNION",
    "ALL", "WITH", "RECURSIVE", "GROUP BY", "ORDER BY", "LIMIT", "OFFSET", "HAVING", "INSERT",
    "INTO", "VALUES", "UPDATE", "SET", "DELETE", "DROP", "TABLE", "PRAGMA", "ATTACH", "CREATE",
    "FOR UPDATE", "CASE", "WHEN", "THEN", "ELSE", "END", "CAST", "count(*)", "max(since)",
    "tags", "iovs", "payloads", "global_tags", "global_tag_map", "sqlite_master", "pg_class",
    "pg_catalog.pg_user", "information_schema.tables", "name", "since", "data", "*", "?", ",",
    "(", ")", ";", "=", "<>", "||", "'x'", "'?:'", "1", "-1", "1.5", "1e308", ":", "$1", "%",
    "load_extension('x')", "pg_sleep(1)", "t", "x.y", '"quoted"', "--", "/*", "*/",
]  # fmt: skip

sql_text = st.one_of(
    st.lists(st.sampled_from(WORDS), max_size=14).map(" ".join),
    st.text(max_size=80),
)
values = st.text(alphabet=string.printable, max_size=12)


@FUZZ
@given(
    sql=sql_text,
    binds=st.lists(values, max_size=3),
    encoding=st.sampled_from(["BLOB", "BLOBzip", "BLOBzip9", "BLOBzip0", "BLOBzipx", "XML", ""]),
)
def test_random_sql_never_gets_a_server_error(
    fn: AppClient,
    counts: Callable[[], dict[str, int]],
    sql: str,
    binds: list[str],
    encoding: str,
) -> None:
    before = counts()
    p1 = encode_query(sql, binds)
    url = f"/outpost/Frontier/type=frontier_request:1:DEFAULT&encoding={encoding}&p1={p1}"
    response = fn.get(url, headers=HEADERS)
    assert response.status_code == 200, (sql, binds, response.text)
    answer = parse_answer(response.content)  # always a well-formed envelope
    assert answer.global_error is not None or len(answer.payloads) == 1
    assert counts() == before


keys = st.sampled_from(["type", "encoding", "p1", "ttl", "freshkey", "sec", "meta", "x", ""])
raw_values = st.one_of(
    st.sampled_from(
        ["frontier_request:1:DEFAULT", "frontier_request:1", "BLOBzip5", "short", "forever", "sig"]
    ),
    st.sampled_from([encode_query("SELECT name FROM tags"), encode_query("DELETE FROM tags")]),
    st.text(alphabet=string.ascii_letters + string.digits + "%:=._-/+ ", max_size=20),
)


@FUZZ
@given(
    params=st.lists(st.tuples(keys, raw_values), max_size=8),
    form=st.sampled_from(["/", "?"]),
    servlet=st.text(alphabet=string.ascii_letters + string.digits + "_-.", min_size=1, max_size=12),
)
def test_random_parameters_never_get_a_server_error(
    fn_sqlite: AppClient, params: list[tuple[str, str]], form: str, servlet: str
) -> None:
    raw = "&".join(f"{k}={v}" for k, v in params).replace("#", "%23").replace("?", "%3F")
    url = f"http://origin.test/{servlet}/Frontier{form}{raw}".replace(" ", "%20")
    response = fn_sqlite.get(url, headers=HEADERS)
    assert response.status_code < 500, (url, response.text)
    if response.status_code == 200 and servlet not in ("v1",):
        parse_answer(response.content)
