"""Canonical URLs, as properties: rendering then parsing is the identity, every accepted spelling
of a query renders one URL, two queries never share a URL, and no input raises anything but a
400 or a 404."""

from __future__ import annotations

import contextlib
import operator
import re
import string
from datetime import UTC, datetime, timedelta, timezone

from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from outpost.errors import BadRequest, NotFound
from outpost.urls import (
    FILTER_OPS,
    INT64_MAX,
    LUMI_MAX,
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
    parse,
    parse_time,
)

SETTINGS = settings(max_examples=150, deadline=None)
LATEST = 253402300799_999_999  # 9999-12-31T23:59:59.999999Z, the last time format_time renders
UNRESERVED = frozenset(string.ascii_letters + string.digits + "-._~")
INTEGER_PARAMS = frozenset({"run", "lumi", "time", "since", "until", "channel", "limit"})
TABLE_PARAMS = frozenset({"select", "order", "limit"})


def split(url: str) -> tuple[str, str]:
    path, _, query_string = url.partition("?")
    return path, query_string


def cache_key(query: Query) -> str:
    """What a proxy keys its cache on when a client asks for `query.url()`."""
    return canonical(*split(query.url()))


# --- typed queries -----------------------------------------------------------------------------

ALNUM = string.ascii_letters + string.digits
names = st.builds(operator.add, st.sampled_from(ALNUM), st.text(ALNUM + "_.-", max_size=20))
identifiers = st.builds(
    operator.add, st.sampled_from(string.ascii_letters + "_"), st.text(ALNUM + "_", max_size=12)
)
columns = identifiers.filter(lambda name: name not in TABLE_PARAMS)
hashes = st.binary(min_size=32, max_size=32).map(bytes.hex)
int64s = st.integers(0, INT64_MAX)
times = st.integers(0, LATEST) | st.integers(0, 4_000_000_000).map(lambda s: s * 1_000_000)
awkward = st.sampled_from(list("&=%+,() #;'\"/?é€😀"))
texts = st.text(st.characters(codec="utf-8") | awkward, max_size=12)  # what UTF-8 URLs can carry


@st.composite
def tag_iovs(draw: st.DrawFn) -> TagIovs:
    since = draw(st.just(0) | int64s.filter(lambda n: n < INT64_MAX))
    until = draw(st.none() | st.integers(since + 1, INT64_MAX))
    return TagIovs(
        draw(names),
        since=since,
        until=until,
        channel=draw(st.none() | int64s),
        snapshot=draw(st.none() | times),
    )


resolves = st.builds(
    Resolve,
    names,
    run=st.integers(0, RUN_MAX),
    lumi=st.just(1) | st.integers(0, LUMI_MAX),
    time=st.none() | int64s,
    snapshot=st.none() | times,
)


def filters(values: st.SearchStrategy[str]) -> st.SearchStrategy[Filter]:
    """A filter as `parse` builds it: `in` holds a sorted tuple of distinct items."""
    scalar_ops = st.sampled_from([op for op in FILTER_OPS if op not in ("in", "is")])
    return (
        st.builds(Filter, columns, scalar_ops, values)
        | st.builds(Filter, columns, st.just("is"), st.just("null"))
        | st.builds(
            Filter,
            columns,
            st.just("in"),
            # parse refuses empty items: `in.(a,,b)` is a typo, not a list holding ""
            st.lists(values.filter(bool), max_size=4, unique=True).map(lambda v: tuple(sorted(v))),
        )
    )


def table_queries() -> st.SearchStrategy[TableQuery]:
    def build(
        table: str,
        select: list[str],
        found: list[Filter],
        order: list[Order],
        limit: int | None,
    ) -> TableQuery:
        unique = sorted(set(found), key=lambda f: (f.column, f.render()))
        return TableQuery(table, tuple(select), tuple(unique), tuple(order), limit)

    return st.builds(
        build,
        identifiers,
        st.lists(identifiers, max_size=4, unique=True),
        st.lists(filters(texts), max_size=4),
        st.lists(st.builds(Order, identifiers, st.booleans()), max_size=3),
        st.none() | st.integers(1, INT64_MAX),
    )


# A name glob as `parse` gives it back: runs of `*` collapsed, and `*` alone is no filter.
globs = (
    st.text(ALNUM + "_.-*?", min_size=1, max_size=20)
    .map(lambda glob: re.sub(r"\*+", "*", glob))
    .filter(lambda glob: glob != "*")
)

queries: st.SearchStrategy[Query] = st.one_of(
    st.just(GlobalTagList()),
    st.builds(GlobalTagMap, names),
    st.builds(TagInfo, names),
    tag_iovs(),
    resolves,
    st.builds(Payload, hashes),
    table_queries(),
    st.builds(RunQuery, st.integers(0, RUN_MAX)),
    st.builds(
        RunList,
        since=st.just(0) | st.integers(0, RUN_MAX),
        limit=st.just(100) | st.integers(1, RUN_LIST_MAX),
    ),
    st.builds(TagList, name=st.none() | globs, payload_type=st.none() | names),
    st.builds(PayloadInfo, hashes),
    st.builds(
        GlobalTagDiff,
        names,
        names,
        a_snapshot=st.none() | times,
        b_snapshot=st.none() | times,
    ),
)


# --- (a) idempotent ----------------------------------------------------------------------------


def in_list(*items: str) -> TableQuery:
    return TableQuery("t", filters=(Filter("a", "in", items),))


@SETTINGS
@given(queries)
@example(TagList(name="a_b?.-*", payload_type="P"))
@example(GlobalTagDiff("GT", "GT", a_snapshot=0, b_snapshot=LATEST))
@example(in_list("x,y"))
@example(in_list())
@example(TagIovs("T", snapshot=LATEST))
def test_a_canonical_url_parses_back_into_its_query(query: Query) -> None:
    url = query.url()
    assert parse(*split(url)) == query
    assert canonical(*split(url)) == url


# --- (b) spelling-insensitive ------------------------------------------------------------------


def percent_encode_some(draw: st.DrawFn, text: str) -> str:
    """`text` with some unreserved characters written as %XX (either case); escapes kept."""
    out: list[str] = []
    i = 0
    while i < len(text):
        if text[i] == "%":
            out.append(text[i : i + 3])
            i += 3
            continue
        char = text[i]
        if char in UNRESERVED and draw(st.booleans()):
            escape = f"%{ord(char):02X}"
            out.append(escape.lower() if draw(st.booleans()) else escape)
        else:
            out.append(char)
        i += 1
    return "".join(out)


def respell_integer(draw: st.DrawFn, digits: str) -> str:
    sign = draw(st.sampled_from(["", "%2B", "%2b"]))
    zeros = "0" * draw(st.integers(0, 25 - len(digits)))
    return sign + zeros + digits


def respell_time(draw: st.DrawFn, micros: int) -> str:
    """The same instant in another zone, or as Unix seconds when it is a whole second."""
    if micros % 1_000_000 == 0 and draw(st.booleans()):
        return respell_integer(draw, str(micros // 1_000_000))
    moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=micros)
    minutes = draw(st.integers(-23 * 60 - 59, 23 * 60 + 59))
    try:
        local = moment.astimezone(timezone(timedelta(minutes=minutes)))
    except OverflowError:  # the local date would be past 9999 or before year 1
        local = moment
    text = local.isoformat(sep=draw(st.sampled_from(["T", " "])))
    if text.endswith("+00:00") and draw(st.booleans()):
        text = text.removesuffix("+00:00") + "Z"
    return text.replace("+", "%2B")


@st.composite
def respellings(draw: st.DrawFn, url: str) -> tuple[str, str]:
    path, query_string = split(url)
    pairs: list[str] = []
    for pair in query_string.split("&") if query_string else []:
        key, _, value = pair.partition("=")
        if key in INTEGER_PARAMS:
            value = respell_integer(draw, value)
        elif key in ("snapshot", "a_snapshot", "b_snapshot"):
            value = respell_time(draw, parse_time(value))
        pairs.append(f"{percent_encode_some(draw, key)}={percent_encode_some(draw, value)}")
    pairs = draw(st.permutations(pairs))
    blanks = draw(st.lists(st.integers(0, len(pairs)), max_size=3))
    for position in sorted(blanks, reverse=True):
        pairs.insert(position, "")
    slash = draw(st.sampled_from(["", "/"]))
    return path + slash, "&".join(pairs)


@SETTINGS
@given(st.data(), queries)
def test_every_spelling_of_a_query_gives_its_canonical_url(
    data: st.DataObject, query: Query
) -> None:
    url = query.url()
    path, query_string = data.draw(respellings(url), label="spelling")
    assert canonical(path, query_string) == url


@SETTINGS
@given(
    st.data(),
    st.builds(
        Resolve,
        names,
        run=st.integers(0, RUN_MAX),
        time=st.none() | int64s,
        snapshot=st.none() | st.integers(0, LATEST),
    ),
)
def test_a_default_lumi_written_out_gives_the_url_without_it(
    data: st.DataObject, query: Resolve
) -> None:
    path, query_string = data.draw(respellings(query.url()), label="spelling")
    lumi = data.draw(st.sampled_from(["lumi=1", "lumi=01", "lumi=%2B1"]), label="lumi")
    assert canonical(path, f"{query_string}&{lumi}") == query.url()


# --- (c) injective -----------------------------------------------------------------------------


@SETTINGS
@given(queries, queries)
def test_different_queries_never_share_a_canonical_url(first: Query, second: Query) -> None:
    assume(first != second)
    assert first.url() != second.url()
    assert cache_key(first) != cache_key(second)


# Tiny values on one column make near-misses likely among thirty queries: values that differ
# only in an escaped character, lists that differ only in where the commas are, an empty list.
tiny_values = st.text(st.sampled_from("a,()%&=+ é"), max_size=2)
tiny_filters = st.builds(
    Filter, st.just("a"), st.sampled_from(["eq", "ne"]), tiny_values
) | st.builds(
    Filter,
    st.just("a"),
    st.just("in"),
    st.lists(tiny_values.filter(bool), max_size=3, unique=True).map(lambda v: tuple(sorted(v))),
)
tiny_tables = st.lists(tiny_filters, max_size=2, unique=True).map(
    lambda found: TableQuery("t", filters=tuple(sorted(found, key=lambda f: f.render())))
)


@SETTINGS
@given(st.lists(tiny_tables, min_size=2, max_size=30, unique=True))
def test_different_filters_never_share_a_canonical_url(batch: list[TableQuery]) -> None:
    seen: dict[str, TableQuery] = {}
    for query in batch:
        other = seen.setdefault(cache_key(query), query)
        assert other == query, f"{other} and {query} share the URL {cache_key(query)}"


# --- (d) only 400 or 404 -----------------------------------------------------------------------

KINDS = [
    "globaltags",
    "tags",
    "resolve",
    "payloads",
    "query",
    "runs",
    "diff",
    "diff/globaltags",
    "",
]
KEYS = ["run", "lumi", "time", "snapshot", "since", "until", "channel", "select", "order", "limit"]
KEYS += ["name", "payload_type", "a", "b", "a_snapshot", "b_snapshot"]
anything = st.text(st.characters(exclude_categories=()), max_size=40)  # surrogates too
escapes = st.integers(0, 255).map(lambda b: f"%{b:02X}")
raw_piece = st.text(max_size=6) | escapes | st.sampled_from(list("+&=.,()"))
raw_text = st.lists(raw_piece, max_size=4).map("".join)

paths = anything | st.builds(
    operator.add,
    st.sampled_from([f"/v1/{kind}" for kind in KINDS]),
    st.lists(raw_text | names, max_size=3).map(lambda parts: "".join("/" + p for p in parts)),
)
values = (
    raw_text
    | st.integers(-(2**70), 2**70).map(str)
    | st.builds(operator.add, st.sampled_from([f"{op}." for op in FILTER_OPS]), raw_text)
)
fields = st.builds(
    lambda key, value: f"{key}={value}", st.sampled_from(KEYS) | identifiers | raw_text, values
)
query_strings = anything | st.lists(fields | raw_text, max_size=6).map("&".join)


@SETTINGS
@given(paths, query_strings)
def test_parsing_any_text_raises_only_bad_request_or_not_found(
    path: str, query_string: str
) -> None:
    with contextlib.suppress(BadRequest, NotFound):
        parse(path, query_string)


# What the origin hands `canonical`: the raw query string decoded as Latin-1, any ISO time.
latin1 = st.text(st.characters(max_codepoint=255), max_size=40)
iso_times = st.builds(
    lambda moment, minutes: moment.replace(tzinfo=timezone(timedelta(minutes=minutes))).isoformat(),
    st.datetimes(),
    st.integers(-23 * 60 - 59, 23 * 60 + 59),
).map(lambda text: text.replace("+", "%2B"))
snapshot_fields = iso_times.map(lambda text: f"snapshot={text}")


@SETTINGS
@given(
    st.sampled_from(["/v1/resolve/GT", "/v1/tags/T/iovs", "/v1/query/t"]) | latin1,
    st.lists(fields | snapshot_fields | latin1, max_size=4).map("&".join),
)
@example("/v1/tags/T/iovs", "snapshot=9999-12-31T23:59:59-05:00")
def test_canonicalising_any_request_raises_only_bad_request_or_not_found(
    path: str, query_string: str
) -> None:
    with contextlib.suppress(BadRequest, NotFound):
        canonical(path, "run=1&" + query_string if path == "/v1/resolve/GT" else query_string)
