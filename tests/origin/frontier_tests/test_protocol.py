"""Frontier requests built as frontier_client builds them decode to the database's own rows."""

from __future__ import annotations

import pytest
from support.asgi import AppClient
from support.fnkit import HEADERS, Answer, Fetch, as_frontier, frontier_url, parse_answer

IOVS = (
    "SELECT tag_name, channel, since, insertion_time, payload_hash FROM iovs"
    " WHERE tag_name = ? ORDER BY since, insertion_time"
)
IOVS_DIRECT = (
    "SELECT tag_name, channel, since, insertion_time, payload_hash FROM iovs"
    " WHERE tag_name = :tag ORDER BY since, insertion_time"
)


def get(client: AppClient, url: str, **headers: str) -> Answer:
    response = client.get(url, headers={**HEADERS, **headers})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/xml;charset=US-ASCII"
    assert response.headers["content-length"] == str(len(response.content))
    return parse_answer(response.content)


def a_tag(fetch: Fetch) -> str:
    return str(fetch("SELECT name FROM tags ORDER BY name")[0][0])


def test_iovs_of_a_tag_decode_to_the_rows_in_the_database(fn: AppClient, fetch: Fetch) -> None:
    tag = a_tag(fetch)
    answer = get(fn, frontier_url((IOVS, [tag])))
    assert answer.global_error is None and answer.version == "3.42"
    (payload,) = answer.payloads
    assert payload.error == 0 and payload.encoding == "BLOBzip5"
    assert payload.columns == [
        ("tag_name", "VARCHAR2"),
        ("channel", "NUMBER(20)"),
        ("since", "NUMBER(20)"),
        ("insertion_time", "NUMBER(20)"),
        ("payload_hash", "VARCHAR2"),
    ]
    expected = [[as_frontier(v) for v in row] for row in fetch(IOVS_DIRECT, tag=tag)]
    assert expected and payload.rows == expected
    assert payload.records == len(expected)


@pytest.mark.parametrize("encoding", ["BLOB", "BLOBzip", "BLOBzip5", "BLOBzip9", "BLOBzip0"])
def test_every_encoding_carries_the_same_rows(fn_sqlite: AppClient, encoding: str) -> None:
    sql = "SELECT name, time_type, state, created_at FROM tags ORDER BY name"
    reference = get(fn_sqlite, frontier_url(sql, encoding="BLOB")).payloads[0]
    payload = get(fn_sqlite, frontier_url(sql, encoding=encoding)).payloads[0]
    assert payload.encoding == encoding
    assert payload.rows == reference.rows and len(payload.rows) == 30
    assert payload.full_size == reference.full_size == len(reference.stream)


def test_payload_bytes_come_back_as_a_blob(fn: AppClient, fetch: Fetch) -> None:
    (digest, size, data) = fetch(
        "SELECT hash, size, data FROM payloads ORDER BY size DESC, hash LIMIT 1"
    )[0]
    sql = "SELECT hash, size, data FROM payloads WHERE hash = ?"
    (payload,) = get(fn, frontier_url((sql, [digest]), encoding="BLOBzip")).payloads
    assert payload.columns == [("hash", "VARCHAR2"), ("size", "NUMBER(20)"), ("data", "BLOB")]
    assert payload.rows == [[digest.encode(), str(size).encode(), bytes(data)]]
    assert size >= 4 * 1024 * 1024  # the sample's largest object: many base64 lines


def test_nulls_numbers_and_text_render_as_the_servlet_renders_them(fn: AppClient) -> None:
    sql = "SELECT NULL AS nil, 1.5 AS half, 'a word' AS word, count(*) AS n FROM tags"
    (payload,) = get(fn, frontier_url(sql)).payloads
    assert [name for name, _ in payload.columns] == ["nil", "half", "word", "n"]
    assert payload.columns[0][1] == "VARCHAR2" and payload.columns[3][1] == "NUMBER(20)"
    assert payload.rows == [[None, b"1.5", b"a word", b"30"]]


def test_several_payloads_are_answered_in_order(fn: AppClient, fetch: Fetch) -> None:
    tag = a_tag(fetch)
    queries = [
        "SELECT name, state FROM global_tags ORDER BY name",
        (IOVS, [tag]),
        "SELECT count(*) FROM payloads",
    ]
    answer = get(fn, frontier_url(*queries))
    assert answer.transaction_payloads == 3 and len(answer.payloads) == 3
    first, second, third = answer.payloads
    assert first.rows == [
        [as_frontier(v) for v in row]
        for row in fetch("SELECT name, state FROM global_tags ORDER BY name")
    ]
    assert second.rows == [[as_frontier(v) for v in row] for row in fetch(IOVS_DIRECT, tag=tag)]
    assert third.rows == [[as_frontier(fetch("SELECT count(*) FROM payloads")[0][0])]]


def test_bind_values_are_bound_to_the_markers_in_order(fn: AppClient, fetch: Fetch) -> None:
    sql = "SELECT name FROM tags WHERE time_type = ? AND created_at > ? AND name <> ? ORDER BY name"
    direct = fetch(
        "SELECT name FROM tags WHERE time_type = 'run' AND created_at > 0 AND name <> 'x'"
        " ORDER BY name"
    )
    (payload,) = get(fn, frontier_url((sql, ["run", "0", "x"]))).payloads
    assert payload.rows == [[as_frontier(name)] for (name,) in direct] and direct


def test_a_bind_value_is_data_never_sql(fn: AppClient, fetch: Fetch) -> None:
    sql = "SELECT name FROM tags WHERE name = ?"
    (payload,) = get(fn, frontier_url((sql, ["x' OR '1'='1"]))).payloads
    assert payload.error == 0 and payload.rows == []


@pytest.mark.parametrize("servlet", ["outpost", "FrontierProd", "atlr", "Frontier3D"])
@pytest.mark.parametrize("form", ["path", "query"])
def test_both_url_forms_under_any_servlet_name(
    fn_sqlite: AppClient, servlet: str, form: str
) -> None:
    sql = "SELECT name FROM global_tags ORDER BY name"
    answer = get(fn_sqlite, frontier_url(sql, servlet=servlet, form=form))
    assert [row[0] for row in answer.payloads[0].rows] == [
        b"OUTPOST_HLT_2026_V1",
        b"OUTPOST_PROMPT_2025_V3",
    ]


def test_fnget_style_request_with_the_query_form_and_extra_parameters(
    fn_sqlite: AppClient,
) -> None:
    url = frontier_url(
        "SELECT count(*) FROM tags", form="query", extra="&ttl=short&freshkey=abc123"
    )
    (payload,) = get(fn_sqlite, url).payloads
    assert payload.rows == [[b"30"]]


def test_head_gives_the_length_of_the_answer_without_it(fn_sqlite: AppClient) -> None:
    url = frontier_url("SELECT name FROM tags ORDER BY name")
    full = fn_sqlite.get(url, headers=HEADERS)
    head = fn_sqlite.head(url, headers=HEADERS)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == full.headers["content-length"]
    assert head.headers["cache-control"] == full.headers["cache-control"]


def test_the_answer_is_the_servlets_envelope_line_by_line(fn_sqlite: AppClient) -> None:
    body = fn_sqlite.get(frontier_url("SELECT 1 AS one"), headers=HEADERS).content.decode()
    lines = body.split("\n")
    assert lines[:5] == [
        '<?xml version="1.0" encoding="US-ASCII"?>',
        '<!DOCTYPE frontier SYSTEM "http://frontier.fnal.gov/frontier.dtd">',
        '<frontier version="3.42" xmlversion="1.0">',
        ' <transaction payloads="1">',
        '  <payload type="frontier_request" version="1" encoding="BLOBzip5">',
    ]
    assert lines[5].startswith("   <data>") and lines[5].endswith("</data>")
    assert lines[6].startswith('   <quality error="0" md5="')
    # header ("one", "NUMBER(10)", EOR) 8 + 15 + 1, record ("1", EOR) 6 + 1
    assert lines[6].endswith('" records="1" full_size="31"/>')
    assert lines[7:] == ["  </payload>", " </transaction>", "</frontier>", ""]


def test_base64_lines_are_76_columns(fn_sqlite: AppClient) -> None:
    body = fn_sqlite.get(
        frontier_url("SELECT name, description FROM tags", encoding="BLOB"), headers=HEADERS
    ).content.decode()
    data = body.split("<data>")[1].split("</data>")[0]
    lines = data.split("\n")
    assert len(lines) > 3
    assert all(len(line) == 76 for line in lines[:-1]) and 0 < len(lines[-1]) <= 76


def test_frontier_requests_are_counted_under_one_route_label(fn_sqlite: AppClient) -> None:
    for servlet in ("outpost", "FrontierProd"):
        get(fn_sqlite, frontier_url("SELECT 1", servlet=servlet))
    metrics = fn_sqlite.get("/_outpost/metrics").text
    assert (
        'outpost_origin_requests_total{method="GET",route="/Frontier",status="200"} 2.0' in metrics
    )
    assert 'outpost_origin_query_seconds_count{route="/Frontier"} 2.0' in metrics
