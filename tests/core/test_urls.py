"""Canonical URLs: every route parses into its typed query, every spelling of a read renders one
canonical URL, and every malformed read is a 400 or 404 that says what was wrong."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

import pytest

from outpost.errors import BadRequest, NotFound
from outpost.urls import (
    FILTER_OPS,
    LUMI_MAX,
    NAME_GLOB_MAX,
    ROUTES,
    RUN_LIST_MAX,
    RUN_MAX,
    Filter,
    GlobalTagDiff,
    GlobalTagList,
    GlobalTagMap,
    Order,
    Payload,
    PayloadInfo,
    Query,
    Resolve,
    RunList,
    RunQuery,
    TableQuery,
    TagInfo,
    TagIovs,
    TagList,
    canonical,
    format_time,
    is_plain_name,
    parse,
    parse_name_glob,
    parse_params,
    parse_time,
)

HASH = "0123456789abcdef" * 4
MAY_DAY = "2026-05-01T12:00:00Z"
RESOLVE_PARAMS = ["lumi", "run", "snapshot", "time"]
IOVS_PARAMS = ["channel", "since", "snapshot", "until"]


def utc(year: int, month: int, day: int, hour: int = 0) -> int:
    """Microseconds since the epoch of a UTC date and hour."""
    return int(datetime(year, month, day, hour, tzinfo=UTC).timestamp()) * 1_000_000


def split(url: str) -> tuple[str, str]:
    path, _, query_string = url.partition("?")
    return path, query_string


def bad(path: str, query_string: str = "") -> BadRequest:
    """The BadRequest raised for this read; fails the test if anything else happens."""
    with pytest.raises(BadRequest) as caught:
        canonical(path, query_string)
    assert caught.value.status == 400
    return caught.value


def not_found(path: str, query_string: str = "") -> NotFound:
    with pytest.raises(NotFound) as caught:
        canonical(path, query_string)
    assert caught.value.status == 404
    return caught.value


def assert_one_spelling(path: str, spellings: list[str], expected: str) -> None:
    assert {canonical(path, spelling) for spelling in spellings} == {expected}


# --- every route -------------------------------------------------------------------------------

ROUTE_CASES: list[tuple[str, str, Query, str]] = [
    ("/v1/globaltags", "", GlobalTagList(), "/v1/globaltags"),
    (
        "/v1/globaltags/GT_2026.v1-a",
        "",
        GlobalTagMap("GT_2026.v1-a"),
        "/v1/globaltags/GT_2026.v1-a",
    ),
    ("/v1/tags/EcalPedestals", "", TagInfo("EcalPedestals"), "/v1/tags/EcalPedestals"),
    ("/v1/tags/Ecal/iovs", "", TagIovs("Ecal"), "/v1/tags/Ecal/iovs"),
    (
        "/v1/tags/Ecal/iovs",
        f"until=20&since=10&snapshot={MAY_DAY}&channel=3",
        TagIovs("Ecal", since=10, until=20, channel=3, snapshot=utc(2026, 5, 1, 12)),
        f"/v1/tags/Ecal/iovs?channel=3&since=10&snapshot={MAY_DAY}&until=20",
    ),
    ("/v1/resolve/GT", "run=5", Resolve("GT", run=5), "/v1/resolve/GT?run=5"),
    (
        "/v1/resolve/GT",
        f"time=7&snapshot={MAY_DAY}&run=5&lumi=2",
        Resolve("GT", run=5, lumi=2, time=7, snapshot=utc(2026, 5, 1, 12)),
        f"/v1/resolve/GT?lumi=2&run=5&snapshot={MAY_DAY}&time=7",
    ),
    ("/v1/payloads/" + HASH, "", Payload(HASH), "/v1/payloads/" + HASH),
    ("/v1/query/tags", "", TableQuery("tags"), "/v1/query/tags"),
    (
        "/v1/query/iovs",
        "tag=in.(b,a)&select=tag,since&since=gt.5&order=since.desc,tag&limit=10",
        TableQuery(
            "iovs",
            select=("tag", "since"),
            filters=(Filter("since", "gt", "5"), Filter("tag", "in", ("a", "b"))),
            order=(Order("since", descending=True), Order("tag")),
            limit=10,
        ),
        "/v1/query/iovs?limit=10&order=since.desc,tag.asc&select=tag,since&since=gt.5&tag=in.(a,b)",
    ),
    (
        "/v1/query/tags",
        "end_of_validity=is.null",
        TableQuery("tags", filters=(Filter("end_of_validity", "is", "null"),)),
        "/v1/query/tags?end_of_validity=is.null",
    ),
    ("/v1/runs/500", "", RunQuery(500), "/v1/runs/500"),
    ("/v1/runs/0", "", RunQuery(0), "/v1/runs/0"),
    (f"/v1/runs/{RUN_MAX}", "", RunQuery(RUN_MAX), f"/v1/runs/{RUN_MAX}"),
    ("/v1/runs", "", RunList(), "/v1/runs"),
    ("/v1/runs", "since=500", RunList(since=500), "/v1/runs?since=500"),
    (
        "/v1/runs",
        "since=500&limit=1000",
        RunList(since=500, limit=1000),
        "/v1/runs?limit=1000&since=500",
    ),
    ("/v1/runs", "limit=1", RunList(limit=1), "/v1/runs?limit=1"),
    ("/v1/tags", "", TagList(), "/v1/tags"),
    ("/v1/tags", "name=Ecal*", TagList(name="Ecal*"), "/v1/tags?name=Ecal*"),
    (
        "/v1/tags",
        "payload_type=EcalPedestals&name=Ecal%3F_v*",
        TagList(name="Ecal?_v*", payload_type="EcalPedestals"),
        "/v1/tags?name=Ecal%3F_v*&payload_type=EcalPedestals",
    ),
    ("/v1/tags", "payload_type=X", TagList(payload_type="X"), "/v1/tags?payload_type=X"),
    ("/v1/payloads/" + HASH + "/info", "", PayloadInfo(HASH), f"/v1/payloads/{HASH}/info"),
    (
        "/v1/diff/globaltags",
        "b=GT2&a=GT1",
        GlobalTagDiff("GT1", "GT2"),
        "/v1/diff/globaltags?a=GT1&b=GT2",
    ),
    (
        "/v1/diff/globaltags",
        f"b_snapshot={MAY_DAY}&b=GT&a=GT&a_snapshot=1777636799",
        GlobalTagDiff(
            "GT", "GT", a_snapshot=utc(2026, 5, 1, 12) - 1_000_000, b_snapshot=utc(2026, 5, 1, 12)
        ),
        f"/v1/diff/globaltags?a=GT&a_snapshot=2026-05-01T11:59:59Z&b=GT&b_snapshot={MAY_DAY}",
    ),
]


@pytest.mark.parametrize(("path", "query_string", "query", "url"), ROUTE_CASES)
def test_each_route_parses_into_its_typed_query(
    path: str, query_string: str, query: Query, url: str
) -> None:
    assert parse(path, query_string) == query


@pytest.mark.parametrize(("path", "query_string", "query", "url"), ROUTE_CASES)
def test_each_typed_query_renders_its_canonical_url(
    path: str, query_string: str, query: Query, url: str
) -> None:
    assert query.url() == url
    assert canonical(path, query_string) == url


@pytest.mark.parametrize(("path", "query_string", "query", "url"), ROUTE_CASES)
def test_a_canonical_url_parses_back_into_the_same_query(
    path: str, query_string: str, query: Query, url: str
) -> None:
    assert parse(*split(url)) == query


# --- one spelling ------------------------------------------------------------------------------


def test_parameters_in_any_order_give_one_canonical_url() -> None:
    assert_one_spelling(
        "/v1/resolve/GT",
        ["run=5&lumi=2&time=9", "lumi=2&time=9&run=5", "time=9&run=5&lumi=2"],
        "/v1/resolve/GT?lumi=2&run=5&time=9",
    )


def test_filters_are_sorted_by_column_then_value() -> None:
    assert_one_spelling(
        "/v1/query/iovs",
        ["b=eq.1&a=lt.3&a=gt.2", "a=gt.2&b=eq.1&a=lt.3", "a=lt.3&a=gt.2&b=eq.1"],
        "/v1/query/iovs?a=gt.2&a=lt.3&b=eq.1",
    )


@pytest.mark.parametrize("spelling", ["run=5", "run=05", "run=0005", "run=%2B5", "run=%2B005"])
def test_integers_with_a_plus_sign_or_leading_zeros_are_plain_decimal(spelling: str) -> None:
    assert canonical("/v1/resolve/GT", spelling) == "/v1/resolve/GT?run=5"


def test_every_integer_parameter_is_rendered_in_plain_decimal() -> None:
    assert (
        canonical("/v1/tags/T/iovs", "since=%2B010&until=0020&channel=003")
        == "/v1/tags/T/iovs?channel=3&since=10&until=20"
    )
    assert canonical("/v1/resolve/GT", "run=1&lumi=07&time=%2B0") == (
        "/v1/resolve/GT?lumi=7&run=1&time=0"
    )
    assert canonical("/v1/query/t", "limit=%2B0100") == "/v1/query/t?limit=100"


@pytest.mark.parametrize(
    ("path", "url"),
    [
        ("/v1/globaltags/", "/v1/globaltags"),
        ("/v1/globaltags/GT/", "/v1/globaltags/GT"),
        ("/v1/tags/T/", "/v1/tags/T"),
        ("/v1/tags/T/iovs/", "/v1/tags/T/iovs"),
        ("/v1/payloads/" + HASH + "/", "/v1/payloads/" + HASH),
        ("/v1/query/tags/", "/v1/query/tags"),
    ],
)
def test_a_trailing_slash_is_dropped(path: str, url: str) -> None:
    assert canonical(path) == url


def test_percent_escapes_in_names_and_values_are_decoded() -> None:
    assert canonical("/v1/resolve/GT", "%72un=%35&%6Cumi=%32") == "/v1/resolve/GT?lumi=2&run=5"
    assert canonical("/v1/query/t", "%61=%65q.x&%73elect=%61") == "/v1/query/t?a=eq.x&select=a"


def test_blank_fields_between_ampersands_are_ignored() -> None:
    assert_one_spelling(
        "/v1/resolve/GT",
        ["run=5&lumi=2", "&&run=5&&&lumi=2&", "&run=5&lumi=2", "run=5&&lumi=2&&"],
        "/v1/resolve/GT?lumi=2&run=5",
    )


def test_default_lumi_and_since_are_left_out() -> None:
    assert canonical("/v1/resolve/GT", "run=5&lumi=1") == "/v1/resolve/GT?run=5"
    assert canonical("/v1/resolve/GT", "run=5&lumi=%2B01") == "/v1/resolve/GT?run=5"
    assert canonical("/v1/tags/T/iovs", "since=0&until=9") == "/v1/tags/T/iovs?until=9"
    assert canonical("/v1/tags/T/iovs", "since=000") == "/v1/tags/T/iovs"


@pytest.mark.parametrize("spelling", ["500", "0500", "+500", "%2B500", "500/"])
def test_a_run_in_the_path_has_one_spelling(spelling: str) -> None:
    assert canonical("/v1/runs/" + unquote(spelling)) == "/v1/runs/500"


def test_the_default_page_and_start_of_the_runs_are_left_out() -> None:
    assert canonical("/v1/runs", "since=0&limit=100") == "/v1/runs"
    assert canonical("/v1/runs", "limit=%2B0100&since=000") == "/v1/runs"
    assert canonical("/v1/runs", "limit=099&since=07") == "/v1/runs?limit=99&since=7"
    assert RunList(limit=100) == RunList() and RunList().limit == 100


def test_values_that_are_not_defaults_are_kept_even_when_zero() -> None:
    assert canonical("/v1/resolve/GT", "run=0&lumi=0&time=0") == (
        "/v1/resolve/GT?lumi=0&run=0&time=0"
    )
    assert canonical("/v1/tags/T/iovs", "channel=0") == "/v1/tags/T/iovs?channel=0"


def test_a_hash_is_lower_cased() -> None:
    assert canonical("/v1/payloads/" + HASH.upper()) == "/v1/payloads/" + HASH


def test_repeated_filters_and_in_list_items_collapse() -> None:
    assert canonical("/v1/query/t", "a=eq.1&a=eq.1") == "/v1/query/t?a=eq.1"
    assert canonical("/v1/query/t", "a=in.(c,a,b,a)") == "/v1/query/t?a=in.(a,b,c)"
    assert canonical("/v1/query/t", "a=in.(b,a)&a=in.(a,b)") == "/v1/query/t?a=in.(a,b)"


def test_an_order_without_direction_is_ascending() -> None:
    assert canonical("/v1/query/t", "order=a,b.desc,c.asc") == (
        "/v1/query/t?order=a.asc,b.desc,c.asc"
    )


def test_select_and_order_keep_the_order_they_were_given_in() -> None:
    assert canonical("/v1/query/t", "select=b,a") != canonical("/v1/query/t", "select=a,b")
    assert canonical("/v1/query/t", "order=b,a") != canonical("/v1/query/t", "order=a,b")


@pytest.mark.parametrize(
    "value", ["x&y=z", "50%", "a+b", "a b", "1,2", "(x)", "é€😀", "#frag", "semi;colon", ""]
)
def test_filter_values_are_escaped_so_the_canonical_url_reads_back(value: str) -> None:
    query = TableQuery("t", filters=(Filter("a", "eq", value),))
    path, query_string = split(query.url())
    assert parse(path, query_string) == query
    assert canonical(path, query_string) == query.url()


@pytest.mark.parametrize("item", ["x&y", "5%", "a+b", "a b", "(x)", "é"])
def test_in_list_items_are_escaped_so_the_canonical_url_reads_back(item: str) -> None:
    query = TableQuery("t", filters=(Filter("a", "in", tuple(sorted({item, "z"}))),))
    assert parse(*split(query.url())) == query


@pytest.mark.parametrize("spelling", ["in.(,a)", "in.(a,)", "in.(a,,b)"])
def test_an_empty_in_list_item_is_a_bad_request(spelling: str) -> None:
    with pytest.raises(BadRequest, match="empty item"):
        parse("/v1/query/t", f"a={spelling}")


def test_an_in_list_item_containing_a_comma_reads_back_as_one_item() -> None:
    query = TableQuery("t", filters=(Filter("a", "in", ("x,y",)),))
    assert parse(*split(query.url())) == query


def test_an_empty_in_list_reads_back_as_an_empty_list() -> None:
    query = TableQuery("t", filters=(Filter("a", "in", ()),))
    assert parse(*split(query.url())) == query


def test_a_name_glob_has_one_spelling() -> None:
    assert_one_spelling(
        "/v1/tags",
        ["name=Ecal*", "name=Ecal**", "name=Ecal%2A", "name=E%63al***", "name=Ecal*&"],
        "/v1/tags?name=Ecal*",
    )
    assert canonical("/v1/tags", "name=Ecal?") == "/v1/tags?name=Ecal%3F"
    assert canonical("/v1/tags", "name=Ecal%3f") == "/v1/tags?name=Ecal%3F"


def test_a_glob_that_matches_every_name_is_no_filter() -> None:
    assert_one_spelling("/v1/tags", ["name=*", "name=***", "name=%2A", ""], "/v1/tags")
    assert parse("/v1/tags", "name=**&payload_type=P") == TagList(payload_type="P")


def test_parse_name_glob_keeps_plain_name_characters_and_wildcards() -> None:
    assert parse_name_glob("A-b.c_d?*") == "A-b.c_d?*"
    assert parse_name_glob("*a**b*") == "*a*b*"
    with pytest.raises(BadRequest, match="q='a b' is not a name glob"):
        parse_name_glob("a b", "q")


def test_a_payloads_info_is_not_its_bytes() -> None:
    assert canonical(f"/v1/payloads/{HASH.upper()}/info/") == f"/v1/payloads/{HASH}/info"
    assert parse(f"/v1/payloads/{HASH}/info") != parse(f"/v1/payloads/{HASH}")
    not_found(f"/v1/payloads/{HASH}/bytes")


def test_a_diff_is_ordered_its_sides_are_not_interchangeable() -> None:
    assert canonical("/v1/diff/globaltags", "a=X&b=Y") != canonical(
        "/v1/diff/globaltags", "a=Y&b=X"
    )
    assert canonical("/v1/diff/globaltags/", "a=X&b=X&b_snapshot=0") == (
        "/v1/diff/globaltags?a=X&b=X&b_snapshot=1970-01-01T00:00:00Z"
    )
    not_found("/v1/diff")
    not_found("/v1/diff/tags", "a=X&b=Y")


def test_parse_params_takes_the_allowed_parameters_once_each() -> None:
    assert parse_params("q=E%63al*&&", ("q",)) == {"q": "Ecal*"}
    assert parse_params("", ("q",)) == {}
    with pytest.raises(BadRequest, match="unknown parameter 'x'"):
        parse_params("x=1", ("q",))
    with pytest.raises(BadRequest, match="given more than once"):
        parse_params("q=1&q=2", ("q",))


# --- times -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spelling",
    [
        "2026-05-01T12:00:00Z",
        "2026-05-01T12:00:00%2B00:00",
        "2026-05-01T12:00:00-00:00",
        "2026-05-01T14:30:00%2B02:30",
        "2026-05-01T07:00:00-05:00",
        "2026-05-01T12:00:00.000000Z",
        "2026-05-01 12:00:00Z",
        "1777636800",
        "%2B01777636800",
    ],
)
def test_a_snapshot_in_any_zone_or_in_unix_seconds_renders_as_utc_z(spelling: str) -> None:
    assert canonical("/v1/resolve/GT", f"run=1&snapshot={spelling}") == (
        f"/v1/resolve/GT?run=1&snapshot={MAY_DAY}"
    )
    assert canonical("/v1/tags/T/iovs", f"snapshot={spelling}") == (
        f"/v1/tags/T/iovs?snapshot={MAY_DAY}"
    )


def test_a_snapshot_keeps_microseconds_only_when_set() -> None:
    assert canonical("/v1/resolve/GT", "run=1&snapshot=2026-05-01T12:00:00.5Z") == (
        "/v1/resolve/GT?run=1&snapshot=2026-05-01T12:00:00.500000Z"
    )


@pytest.mark.parametrize(
    ("text", "micros"),
    [
        ("0", 0),
        ("1970-01-01T00:00:00Z", 0),
        ("1970-01-01T01:00:00+01:00", 0),
        ("1970-01-01T00:00:00.000001Z", 1),
        ("253402300799", 253402300799_000_000),
        ("9999-12-31T23:59:59.999999Z", 253402300799_999_999),
    ],
)
def test_parse_time_gives_microseconds_since_the_epoch(text: str, micros: int) -> None:
    assert parse_time(text) == micros


@pytest.mark.parametrize(
    ("micros", "text"),
    [
        (0, "1970-01-01T00:00:00Z"),
        (1, "1970-01-01T00:00:00.000001Z"),
        (utc(2026, 5, 1, 12), MAY_DAY),
        (253402300799_999_999, "9999-12-31T23:59:59.999999Z"),
    ],
)
def test_format_time_is_iso_utc_with_z(micros: int, text: str) -> None:
    assert format_time(micros) == text
    assert parse_time(text) == micros


# --- 400 ---------------------------------------------------------------------------------------

ERROR_CASES: list[tuple[str, str, str, Any]] = [
    # (path, query string, text the detail must contain, the `accepted` expected)
    ("/v1/resolve/GT", "run=1&colour=red", "unknown parameter 'colour'", RESOLVE_PARAMS),
    ("/v1/tags/T/iovs", "tag=x", "unknown parameter 'tag'", IOVS_PARAMS),
    ("/v1/globaltags", "page=2", "unknown parameter 'page'", []),
    ("/v1/globaltags/GT", "run=1", "unknown parameter 'run'", []),
    ("/v1/tags/T", "since=1", "unknown parameter 'since'", []),
    ("/v1/payloads/" + HASH, "gz=1", "unknown parameter 'gz'", []),
    ("/v1/resolve/GT", "run=1&run=2", "'run' given more than once", None),
    ("/v1/resolve/GT", "run=1&run=1", "'run' given more than once", None),
    ("/v1/tags/T/iovs", "since=1&since=1", "'since' given more than once", None),
    ("/v1/query/t", "limit=1&limit=2", "'limit' given more than once", None),
    ("/v1/query/t", "select=a&select=b", "'select' given more than once", None),
    ("/v1/query/t", "order=a&order=b", "'order' given more than once", None),
    ("/v1/resolve/GT", "run=five", "run='five' is not an integer", f"0..{RUN_MAX}"),
    ("/v1/resolve/GT", "run=-1", "run='-1' is not an integer", f"0..{RUN_MAX}"),
    ("/v1/resolve/GT", "run=1.0", "run='1.0' is not an integer", f"0..{RUN_MAX}"),
    ("/v1/resolve/GT", "run=", "run='' is not an integer", f"0..{RUN_MAX}"),
    ("/v1/resolve/GT", "run=1e3", "run='1e3' is not an integer", f"0..{RUN_MAX}"),
    ("/v1/resolve/GT", "run=%EF%BC%95", "is not an integer", f"0..{RUN_MAX}"),  # fullwidth 5
    ("/v1/resolve/GT", f"run={2**31}", f"run={2**31} is out of range", f"0..{RUN_MAX}"),
    ("/v1/resolve/GT", "run=" + "9" * 30, "is not an integer", f"0..{RUN_MAX}"),
    ("/v1/resolve/GT", f"run=1&lumi={2**32}", "is out of range", f"0..{LUMI_MAX}"),
    ("/v1/tags/T/iovs", f"since={2**63}", f"since={2**63} is out of range", f"0..{2**63 - 1}"),
    ("/v1/query/t", "limit=0", "limit=0 is out of range", f"1..{2**63 - 1}"),
    ("/v1/resolve/GT", "lumi=2", "needs run", ROUTES[4]),
    ("/v1/resolve/GT", "", "needs run", ROUTES[4]),
    ("/v1/tags/T/iovs", "since=5&until=5", "until=5 is not after since=5", "since < until"),
    ("/v1/tags/T/iovs", "since=5&until=4", "until=4 is not after since=5", "since < until"),
    ("/v1/tags/T/iovs", "until=0", "until=0 is not after since=0", "since < until"),
    ("/v1/payloads/abc", "", "'abc' is not a SHA-256 hash", "64 hexadecimal digits"),
    ("/v1/payloads/" + HASH[:-1], "", "is not a SHA-256 hash", "64 hexadecimal digits"),
    ("/v1/payloads/" + HASH + "0", "", "is not a SHA-256 hash", "64 hexadecimal digits"),
    ("/v1/payloads/" + "g" * 64, "", "is not a SHA-256 hash", "64 hexadecimal digits"),
    ("/v1/query/t", "a=like.x", "has no known operator", list(FILTER_OPS)),
    ("/v1/query/t", "a=eq", "has no known operator", list(FILTER_OPS)),
    ("/v1/query/t", "a=EQ.1", "has no known operator", list(FILTER_OPS)),
    ("/v1/query/t", "a=", "has no known operator", list(FILTER_OPS)),
    ("/v1/query/t", "a=in.x,y", "needs a list", "in.(a,b,c)"),
    ("/v1/query/t", "a=in.(x,y", "needs a list", "in.(a,b,c)"),
    ("/v1/query/t", "a=in.x,y)", "needs a list", "in.(a,b,c)"),
    ("/v1/query/t", "a=is.true", "a=is.true is not supported", ["null"]),
    ("/v1/query/t", "a=is.", "is not supported", ["null"]),
    ("/v1/query/t", "select=a,a", "names a column twice", None),
    ("/v1/query/t", "order=a.up", "order 'a.up' has no direction", ["asc", "desc"]),
    ("/v1/resolve/GT", "run", "query field 'run' has no '='", "name=value"),
    ("/v1/resolve/GT", "run=1&lumi", "query field 'lumi' has no '='", "name=value"),
    ("/v1/query/t", "a=eq.%ff", "not valid percent-encoded UTF-8", None),
    ("/v1/query/t", "%C3=eq.1", "not valid percent-encoded UTF-8", None),
    ("/v1/query/t", "a=eq.%C3%28", "not valid percent-encoded UTF-8", None),
    (
        "/v1/resolve/GT",
        "run=1&snapshot=2026-05-01T12:00:00",
        "has no time zone",
        "e.g. a trailing Z",
    ),
    ("/v1/resolve/GT", "run=1&snapshot=2026-05-01", "has no time zone", "e.g. a trailing Z"),
    ("/v1/tags/T/iovs", "snapshot=1969-12-31T23:59:59Z", "is out of range", "1970 to 9999, UTC"),
    ("/v1/tags/T/iovs", "snapshot=1969-12-31T23:59:59.5Z", "is out of range", "1970 to 9999, UTC"),
    ("/v1/tags/T/iovs", "snapshot=0001-01-01T00:00:00Z", "is out of range", "1970 to 9999, UTC"),
    ("/v1/tags/T/iovs", "snapshot=yesterday", "snapshot='yesterday' is not a time", ...),
    ("/v1/tags/T/iovs", "snapshot=", "snapshot='' is not a time", ...),
    ("/v1/tags/T/iovs", "snapshot=253402300800", "is out of range", "0..253402300799"),
    ("/v1/runs/five", "", "run='five' is not an integer", f"0..{RUN_MAX}"),
    ("/v1/runs/-1", "", "run='-1' is not an integer", f"0..{RUN_MAX}"),
    ("/v1/runs/1e3", "", "run='1e3' is not an integer", f"0..{RUN_MAX}"),
    ("/v1/runs/ 5", "", "is not an integer", f"0..{RUN_MAX}"),
    (f"/v1/runs/{2**31}", "", f"run={2**31} is out of range", f"0..{RUN_MAX}"),
    ("/v1/runs/5", "lumi=1", "unknown parameter 'lumi'", []),
    ("/v1/runs", "after=5", "unknown parameter 'after'", ["limit", "since"]),
    ("/v1/runs", "since=1&since=2", "'since' given more than once", None),
    ("/v1/runs", "since=-1", "since='-1' is not an integer", f"0..{RUN_MAX}"),
    ("/v1/runs", f"since={2**31}", "is out of range", f"0..{RUN_MAX}"),
    ("/v1/runs", "limit=0", "limit=0 is out of range", f"1..{RUN_LIST_MAX}"),
    ("/v1/runs", "limit=1001", "limit=1001 is out of range", f"1..{RUN_LIST_MAX}"),
    ("/v1/runs", "limit=", "limit='' is not an integer", f"1..{RUN_LIST_MAX}"),
    ("/v1/tags", "tag=x", "unknown parameter 'tag'", ["name", "payload_type"]),
    ("/v1/tags", "name=a&name=b", "'name' given more than once", None),
    ("/v1/tags", "name=", "name='' is not a name glob", ...),
    ("/v1/tags", "name=Ecal%25", "name='Ecal%' is not a name glob", ...),
    ("/v1/tags", "name=[Ee]cal", "is not a name glob", ...),
    ("/v1/tags", "name=%3Cscript%3E", "is not a name glob", ...),
    ("/v1/tags", "name=" + "a" * (NAME_GLOB_MAX + 1), "is not a name glob", ...),
    ("/v1/tags", "payload_type=a;b", "payload type name 'a;b' is not a plain name", ...),
    ("/v1/tags", "payload_type=", "payload type name '' is not a plain name", ...),
    ("/v1/payloads/abc/info", "", "'abc' is not a SHA-256 hash", "64 hexadecimal digits"),
    ("/v1/payloads/" + HASH + "/info", "x=1", "unknown parameter 'x'", []),
    ("/v1/diff/globaltags", "a=GT", "a diff needs a=GT and b=GT", ROUTES[-1]),
    ("/v1/diff/globaltags", "b=GT", "a diff needs a=GT and b=GT", ROUTES[-1]),
    ("/v1/diff/globaltags", "", "a diff needs a=GT and b=GT", ROUTES[-1]),
    (
        "/v1/diff/globaltags",
        "a=A&b=B&c=C",
        "unknown parameter 'c'",
        ["a", "a_snapshot", "b", "b_snapshot"],
    ),
    ("/v1/diff/globaltags", "a=A&b=B&a=A", "'a' given more than once", None),
    ("/v1/diff/globaltags", "a=x'--&b=B", 'global tag name "x\'--" is not a plain name', ...),
    ("/v1/diff/globaltags", "a=A&b=B&a_snapshot=never", "a_snapshot='never' is not a time", ...),
    ("/v1/diff/globaltags", "a=A&b=B&b_snapshot=2026-05-01", "has no time zone", ...),
]


@pytest.mark.parametrize(("path", "query_string", "detail", "accepted"), ERROR_CASES)
def test_each_malformed_read_is_a_bad_request_saying_what_was_wrong(
    path: str, query_string: str, detail: str, accepted: Any
) -> None:
    error = bad(path, query_string)
    assert detail in error.detail
    if accepted is not ...:
        assert error.accepted == accepted


@pytest.mark.parametrize(
    ("path", "query_string"),
    [
        ("/v1/tags/a;b", ""),
        ("/v1/tags/x'--", ""),
        ("/v1/tags/a;b/iovs", ""),
        ("/v1/globaltags/x'--", ""),
        ("/v1/globaltags/a b", ""),
        ("/v1/globaltags/.hidden", ""),
        ("/v1/globaltags/-dash", ""),
        ("/v1/globaltags/" + "a" * 129, ""),
        ("/v1/resolve/a;b", "run=1"),
        ("/v1/resolve/é", "run=1"),
        ("/v1/tags//iovs", ""),
        ("/v1/query/a;b", ""),
        ("/v1/query/x'--", ""),
        ("/v1/query/1table", ""),
        ("/v1/query/t", "select=x'--"),
        ("/v1/query/t", "select=a,"),
        ("/v1/query/t", "select="),
        ("/v1/query/t", "x'--=eq.1"),
        ("/v1/query/t", "a%3Bb=eq.1"),
        ("/v1/query/t", "=eq.1"),
        ("/v1/query/t", "order=x'--.asc"),
        ("/v1/query/t", "order="),
    ],
)
def test_names_that_are_not_plain_are_bad_requests_naming_the_rule(
    path: str, query_string: str
) -> None:
    error = bad(path, query_string)
    assert "not a plain" in error.detail
    assert error.accepted


def test_a_bad_name_is_quoted_in_the_detail() -> None:
    assert "'a;b'" in bad("/v1/tags/a;b").detail
    assert '"x\'--"' in bad("/v1/query/x'--").detail


def test_sixty_four_parameters_are_accepted_and_sixty_five_are_not() -> None:
    def filters(n: int) -> str:
        return "&".join(f"c{i}=eq.{i}" for i in range(n))

    query = parse("/v1/query/t", filters(64))
    assert isinstance(query, TableQuery)
    assert len(query.filters) == 64
    assert "more than 64 query parameters" in bad("/v1/query/t", filters(65)).detail


def test_blank_fields_do_not_count_towards_the_parameter_limit() -> None:
    query_string = "&&".join(f"c{i}=eq.{i}" for i in range(64)) + "&" * 100
    query = parse("/v1/query/t", query_string)
    assert isinstance(query, TableQuery)
    assert len(query.filters) == 64


@pytest.mark.parametrize(
    "snapshot",
    [
        "9999-12-31T23:59:59-05:00",
        "9999-12-31T23:00:00-01:00",
        "9999-12-31T23:59:59.999999-00:01",
    ],
)
def test_a_snapshot_past_year_9999_in_utc_is_a_bad_request(snapshot: str) -> None:
    bad("/v1/resolve/GT", f"run=1&snapshot={snapshot}")
    bad("/v1/tags/T/iovs", f"snapshot={snapshot}")


def test_the_latest_representable_snapshot_is_accepted() -> None:
    assert canonical("/v1/tags/T/iovs", "snapshot=9999-12-31T23:59:59%2B01:00") == (
        "/v1/tags/T/iovs?snapshot=9999-12-31T22:59:59Z"
    )


# --- 404 ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "",
        "/",
        "/v1",
        "/v1/",
        "/v2/globaltags",
        "v1/globaltags",
        "//v1/globaltags",
        "/v1/nothing",
        "/v1/globaltags/GT/extra",
        "/v1/tags/T/iovs/extra",
        "/v1/tags/T/payloads",
        "/v1/resolve",
        "/v1/payloads",
        "/v1/query",
        "/v1/query/t/extra",
        "/v1/runs/5/records",
    ],
)
def test_a_path_that_is_no_read_route_is_not_found_listing_the_routes(path: str) -> None:
    error = not_found(path)
    assert repr(path) in error.detail
    assert error.accepted == list(ROUTES)


def test_a_long_unknown_path_is_cut_short_in_the_detail() -> None:
    assert len(not_found("/v2/" + "x" * 10_000).detail) < 300


# --- names -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["a", "GT_2026.v1-a", "0", "9.x", "a" * 128, "A-_.z"])
def test_plain_names_are_letters_digits_underscore_dot_dash(name: str) -> None:
    assert is_plain_name(name)


@pytest.mark.parametrize(
    "name", ["", "a;b", "x'--", "-a", ".a", "_a", "a b", "a/b", "é", "a" * 129, "a\n", "a%20"]
)
def test_other_names_are_not_plain(name: str) -> None:
    assert not is_plain_name(name)
