"""Canonical URLs: the one spelling of every Outpost read.

Every read is a GET whose URL is a pure function of the query. `parse` accepts any reasonable
spelling (parameters in any order, `05` or `%2B5` for 5, a trailing slash, percent-escapes of
unreserved characters; a literal `+` is a space, as in any query string) and
returns a typed query; `Query.url()` renders the one canonical spelling: fixed path shape,
parameters sorted by name then value, integers in plain decimal, defaults left out, times as
ISO-8601 UTC. The farm-node client builds URLs with it, the origin parses with it, and the proxy
keys its cache on it, so two spellings of one query share one cache entry.

Pure: imports only the standard library and `outpost.errors`; no I/O, no clock.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final, Literal
from urllib.parse import quote, unquote_plus

from outpost.errors import BadRequest, NotFound

__all__ = [
    "DEFAULT_LUMI",
    "FILTER_OPS",
    "INT64_MAX",
    "LUMI_MAX",
    "RUN_MAX",
    "ROUTES",
    "RUN_LIST_LIMIT",
    "RUN_LIST_MAX",
    "Filter",
    "GlobalTagDiff",
    "GlobalTagList",
    "GlobalTagMap",
    "History",
    "NAME_GLOB_MAX",
    "Order",
    "Payload",
    "PayloadInfo",
    "Query",
    "Resolve",
    "RunList",
    "RunQuery",
    "TAG_LIST_LIMIT",
    "TableQuery",
    "TagInfo",
    "TagIovs",
    "TagList",
    "DECIMAL",
    "FEED_PATH",
    "FeedQuery",
    "canonical",
    "format_time",
    "is_plain_name",
    "parse",
    "parse_name_glob",
    "parse_params",
    "parse_feed",
    "parse_time",
]

INT64_MAX: Final = 2**63 - 1
RUN_MAX: Final = 2**31 - 1
LUMI_MAX: Final = 2**32 - 1
DEFAULT_LUMI: Final = 1
MAX_PARAMS: Final = 64
FILTER_OPS: Final = ("eq", "ne", "lt", "le", "gt", "ge", "in", "is")
IS_VALUES: Final = ("null",)

ROUTES: Final = (
    "/v1/globaltags",
    "/v1/globaltags/{globaltag}",
    "/v1/tags/{tag}",
    "/v1/tags/{tag}/iovs?since=A&until=B[&channel=C][&snapshot=T]",
    "/v1/resolve/{globaltag}?run=R[&lumi=L][&time=T][&snapshot=T]",
    "/v1/payloads/{sha256}",
    "/v1/query/{table}?select=a,b&{column}={op}.{value}&order={column}.asc&limit=N",
    "/v1/tags/{tag}/history[?after=SEQ]",
    "/v1/globaltags/{globaltag}/history[?after=SEQ]",
    "/v1/runs/{run}",
    "/v1/runs[?since=R][&limit=N]",
    "/v1/tags[?name=GLOB][&payload_type=T]",
    "/v1/payloads/{sha256}/info",
    "/v1/diff/globaltags?a=GT1&b=GT2[&a_snapshot=T][&b_snapshot=T]",
)
RUN_LIST_LIMIT: Final = 100  # run records a `/v1/runs` page holds unless `limit` says otherwise
RUN_LIST_MAX: Final = 1000
TAG_LIST_LIMIT: Final = 1000  # tags a `/v1/tags` answer holds at most (`truncated` says more)
NAME_GLOB_MAX: Final = 128

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
_HASH = re.compile(r"[0-9a-fA-F]{64}")
_INT = re.compile(r"[+]?[0-9]{1,25}")
DECIMAL: Final = re.compile(r"0|-?[1-9][0-9]*")  # the one spelling of an integer, ASCII only
_SAFE_IN_VALUE: Final = "-._~:,()"
_LATEST_TIME: Final = 253_402_300_799_999_999  # 9999-12-31T23:59:59.999999Z in µs
_NAME_RULE: Final = "a plain name: letters, digits, '_', '.', '-', starting with a letter or digit"
_GLOB = re.compile(rf"[A-Za-z0-9_.\-*?]{{1,{NAME_GLOB_MAX}}}")
_GLOB_RULE: Final = (
    f"a glob of at most {NAME_GLOB_MAX} characters: the characters of a plain name, "
    "'*' (any run of characters) and '?' (any one character)"
)
_SAFE_IN_GLOB: Final = "-._~*"  # '?' is written %3F


def is_plain_name(text: str) -> bool:
    """True for names Outpost accepts for global tags, tags, records and labels."""
    return _NAME.fullmatch(text) is not None


# --- typed queries -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GlobalTagList:
    def url(self) -> str:
        return "/v1/globaltags"


@dataclass(frozen=True, slots=True)
class GlobalTagMap:
    name: str

    def url(self) -> str:
        return f"/v1/globaltags/{self.name}"


@dataclass(frozen=True, slots=True)
class TagInfo:
    name: str

    def url(self) -> str:
        return f"/v1/tags/{self.name}"


@dataclass(frozen=True, slots=True)
class TagIovs:
    """IOVs of one tag overlapping [since, until); `until=None` is open-ended."""

    tag: str
    since: int = 0
    until: int | None = None
    channel: int | None = None
    snapshot: int | None = None  # microseconds since the epoch, UTC

    def url(self) -> str:
        params: list[tuple[str, str]] = []
        if self.channel is not None:
            params.append(("channel", str(self.channel)))
        if self.since != 0:
            params.append(("since", str(self.since)))
        if self.snapshot is not None:
            params.append(("snapshot", format_time(self.snapshot)))
        if self.until is not None:
            params.append(("until", str(self.until)))
        return _with_params(f"/v1/tags/{self.tag}/iovs", params)


@dataclass(frozen=True, slots=True)
class Resolve:
    """Everything a farm node needs for one (run, lumi) of a global tag.

    `lumi` defaults to 1, the first luminosity section: what a run starts with. `time` is the
    key for timestamp-typed tags; without it they resolve to their newest IOV (head).
    """

    globaltag: str
    run: int
    lumi: int = DEFAULT_LUMI
    time: int | None = None
    snapshot: int | None = None

    def url(self) -> str:
        params: list[tuple[str, str]] = []
        if self.lumi != DEFAULT_LUMI:
            params.append(("lumi", str(self.lumi)))
        params.append(("run", str(self.run)))
        if self.snapshot is not None:
            params.append(("snapshot", format_time(self.snapshot)))
        if self.time is not None:
            params.append(("time", str(self.time)))
        return _with_params(f"/v1/resolve/{self.globaltag}", params)


@dataclass(frozen=True, slots=True)
class Payload:
    hash: str  # lower-case hex SHA-256

    def url(self) -> str:
        return f"/v1/payloads/{self.hash}"


@dataclass(frozen=True, slots=True)
class Filter:
    """`column=op.value`; for `in`, `value` is a sorted tuple of distinct items."""

    column: str
    op: str
    value: str | tuple[str, ...]

    def render(self) -> str:
        if isinstance(self.value, tuple):
            items = ",".join(quote(item, safe="-._~:()") for item in self.value)  # ',' → %2C
            return f"{self.op}.({items})"
        return f"{self.op}.{quote(self.value, safe=_SAFE_IN_VALUE)}"


@dataclass(frozen=True, slots=True)
class Order:
    column: str
    descending: bool = False

    def render(self) -> str:
        return f"{self.column}.{'desc' if self.descending else 'asc'}"


@dataclass(frozen=True, slots=True)
class TableQuery:
    """A generic read over an allow-listed table; `select=()` means every allowed column."""

    table: str
    select: tuple[str, ...] = ()
    filters: tuple[Filter, ...] = ()
    order: tuple[Order, ...] = ()
    limit: int | None = None

    def url(self) -> str:
        params = [(f.column, f.render()) for f in self.filters]
        if self.select:
            params.append(("select", ",".join(self.select)))
        if self.order:
            params.append(("order", ",".join(o.render() for o in self.order)))
        if self.limit is not None:
            params.append(("limit", str(self.limit)))
        return _with_params(f"/v1/query/{self.table}", params)


@dataclass(frozen=True, slots=True)
class History:
    """Who changed a tag (`tags`) or a global tag (`globaltags`), and when: its entries of
    the change feed after position `after`, oldest first."""

    of: Literal["tags", "globaltags"]
    name: str
    after: int = 0

    def url(self) -> str:
        params = [("after", str(self.after))] if self.after else []
        return _with_params(f"/v1/{self.of}/{self.name}/history", params)


@dataclass(frozen=True, slots=True)
class RunQuery:
    """The record of one run: the global tag and conditions it was taken with. Written once
    (`POST /v1/runs/{run}`), never changed."""

    run: int

    def url(self) -> str:
        return f"/v1/runs/{self.run}"


@dataclass(frozen=True, slots=True)
class RunList:
    """Run records from run `since` on (inclusive), in run order, `limit` of them a page.

    `limit` defaults to `RUN_LIST_LIMIT` and, like `Resolve.lumi`, is left out of the URL when
    it is the default, so one page has one URL."""

    since: int = 0
    limit: int = RUN_LIST_LIMIT

    def url(self) -> str:
        params: list[tuple[str, str]] = []
        if self.limit != RUN_LIST_LIMIT:
            params.append(("limit", str(self.limit)))
        if self.since != 0:
            params.append(("since", str(self.since)))
        return _with_params("/v1/runs", params)


@dataclass(frozen=True, slots=True)
class TagList:
    """The tags whose name matches the glob `name` (`*`, `?`; case-sensitive) and whose payload
    type is `payload_type`, both optional, in name order, at most `TAG_LIST_LIMIT` of them.

    `parse` writes a glob in one form: runs of `*` collapse into one, and a glob that is `*`
    alone is no filter (`name=None`), so every set of tags has one URL."""

    name: str | None = None
    payload_type: str | None = None

    def url(self) -> str:
        params: list[tuple[str, str]] = []
        if self.name is not None:
            params.append(("name", quote(self.name, safe=_SAFE_IN_GLOB)))
        if self.payload_type is not None:
            params.append(("payload_type", self.payload_type))
        return _with_params("/v1/tags", params)


@dataclass(frozen=True, slots=True)
class PayloadInfo:
    """A payload's metadata (size, object type, when and by whom it was uploaded), without its
    bytes. Never changes, like the payload itself."""

    hash: str  # lower-case hex SHA-256

    def url(self) -> str:
        return f"/v1/payloads/{self.hash}/info"


@dataclass(frozen=True, slots=True)
class GlobalTagDiff:
    """What changed from global tag `a` as of `a_snapshot` to global tag `b` as of
    `b_snapshot` (None: now): the records added, removed and pointing to another tag. One
    global tag at two snapshots is `a == b`."""

    a: str
    b: str
    a_snapshot: int | None = None  # microseconds since the epoch, UTC
    b_snapshot: int | None = None

    def url(self) -> str:
        params = [("a", self.a), ("b", self.b)]
        if self.a_snapshot is not None:
            params.append(("a_snapshot", format_time(self.a_snapshot)))
        if self.b_snapshot is not None:
            params.append(("b_snapshot", format_time(self.b_snapshot)))
        return _with_params("/v1/diff/globaltags", params)


Query = (
    GlobalTagList
    | GlobalTagMap
    | TagInfo
    | TagIovs
    | Resolve
    | Payload
    | TableQuery
    | History
    | RunQuery
    | RunList
    | TagList
    | PayloadInfo
    | GlobalTagDiff
)

FEED_PATH: Final = "/v1/changes"
FEED_LIMIT_MAX: Final = 10_000
FEED_WAIT_MAX: Final = 60


@dataclass(frozen=True, slots=True)
class FeedQuery:
    """`/v1/changes`: at most `limit` feed entries after position `after`; with `wait`, held
    up to that many seconds until there is one (a long poll). Never cached: it is a read of
    what is new, not of a resource."""

    after: int = 0
    limit: int = 1000
    wait: int = 0

    def url(self) -> str:
        params = [("after", str(self.after)), ("limit", str(self.limit))]
        if self.wait:
            params.append(("wait", str(self.wait)))
        return _with_params(FEED_PATH, params)


def parse_feed(query_string: str) -> FeedQuery:
    """The feed query of `/v1/changes?after=N[&limit=L][&wait=S]`; `BadRequest` if malformed."""
    found = _expect_params(_split_query(query_string), ("after", "limit", "wait"))
    return FeedQuery(
        after=_int(found.get("after", "0"), "after", 0, INT64_MAX),
        limit=_int(found.get("limit", "1000"), "limit", 1, FEED_LIMIT_MAX),
        wait=_int(found.get("wait", "0"), "wait", 0, FEED_WAIT_MAX),
    )


def parse_params(query_string: str, allowed: tuple[str, ...]) -> dict[str, str]:
    """The decoded parameters of a raw query string that may hold only `allowed`, each at most
    once (what a route outside the read API, like a page of the conditions browser, takes)."""
    return _expect_params(_split_query(query_string), allowed)


def _with_params(path: str, params: list[tuple[str, str]]) -> str:
    if not params:
        return path
    return path + "?" + "&".join(f"{k}={v}" for k, v in sorted(params))


# --- parsing -------------------------------------------------------------------------------


def canonical(path: str, query_string: str = "") -> str:
    """The canonical URL (path and query) of any accepted spelling of a read."""
    return parse(path, query_string).url()


def parse(path: str, query_string: str = "") -> Query:
    """Parse a decoded path and a raw query string into a typed query.

    Raises `NotFound` for a path that is no read route and `BadRequest` for anything malformed.
    """
    segments = path.rstrip("/").split("/") if path != "/" else [""]
    if len(segments) < 3 or segments[0] != "" or segments[1] != "v1":
        raise _unknown_route(path)
    params = _split_query(query_string)
    kind, rest = segments[2], segments[3:]
    match kind, rest:
        case "globaltags", []:
            _expect_params(params, ())
            return GlobalTagList()
        case "globaltags", [name]:
            _expect_params(params, ())
            return GlobalTagMap(_name(name, "global tag"))
        case "tags", []:
            found = _expect_params(params, ("name", "payload_type"))
            glob = parse_name_glob(found["name"], "name") if "name" in found else None
            payload_type = found.get("payload_type")
            return TagList(
                name=None if glob == "*" else glob,
                payload_type=None if payload_type is None else _name(payload_type, "payload type"),
            )
        case "tags", [name]:
            _expect_params(params, ())
            return TagInfo(_name(name, "tag"))
        case "tags", [name, "iovs"]:
            return _parse_iovs(_name(name, "tag"), params)
        case "tags" | "globaltags", [name, "history"]:
            found = _expect_params(params, ("after",))
            after = _int(found["after"], "after", 0, INT64_MAX) if "after" in found else 0
            what = "tag" if kind == "tags" else "global tag"
            return History("tags" if kind == "tags" else "globaltags", _name(name, what), after)
        case "resolve", [name]:
            return _parse_resolve(_name(name, "global tag"), params)
        case "payloads", [digest]:
            _expect_params(params, ())
            return Payload(_hash(digest))
        case "payloads", [digest, "info"]:
            _expect_params(params, ())
            return PayloadInfo(_hash(digest))
        case "diff", ["globaltags"]:
            return _parse_diff(params)
        case "query", [table]:
            return _parse_table_query(_identifier(table, "table"), params)
        case "runs", []:
            found = _expect_params(params, ("limit", "since"))
            since = _int(found["since"], "since", 0, RUN_MAX) if "since" in found else 0
            limit = (
                _int(found["limit"], "limit", 1, RUN_LIST_MAX)
                if "limit" in found
                else RUN_LIST_LIMIT
            )
            return RunList(since=since, limit=limit)
        case "runs", [run]:
            _expect_params(params, ())
            return RunQuery(_int(run, "run", 0, RUN_MAX))
    raise _unknown_route(path)


def _unknown_route(path: str) -> NotFound:
    return NotFound(f"no read route matches {path[:200]!r}", accepted=list(ROUTES))


def _decode(raw: str) -> str:
    try:
        return unquote_plus(raw, errors="strict")
    except UnicodeDecodeError as exc:
        raise BadRequest("query string is not valid percent-encoded UTF-8") from exc


def _split_query(query_string: str) -> list[tuple[str, str]]:
    """(decoded name, raw value) pairs: a value is decoded where its syntax is known, so an
    escaped `,` inside an `in` list stays part of its item."""
    pairs: list[tuple[str, str]] = []
    for field in query_string.split("&"):
        if not field:
            continue
        key, eq, value = field.partition("=")
        if not eq:
            raise BadRequest(f"query field {field[:100]!r} has no '='", accepted="name=value")
        pairs.append((_decode(key), value))
        if len(pairs) > MAX_PARAMS:
            raise BadRequest(f"more than {MAX_PARAMS} query parameters")
    return pairs


def _expect_params(params: list[tuple[str, str]], allowed: tuple[str, ...]) -> dict[str, str]:
    found: dict[str, str] = {}
    for key, raw in params:
        if key not in allowed:
            raise BadRequest(f"unknown parameter {key[:100]!r}", accepted=list(allowed))
        if key in found:
            raise BadRequest(f"parameter {key!r} given more than once")
        found[key] = _decode(raw)
    return found


def _name(text: str, what: str) -> str:
    if not is_plain_name(text):
        raise BadRequest(f"{what} name {text[:200]!r} is not a plain name", accepted=_NAME_RULE)
    return text


def _hash(text: str) -> str:
    if not _HASH.fullmatch(text):
        raise BadRequest(f"{text[:200]!r} is not a SHA-256 hash", accepted="64 hexadecimal digits")
    return text.lower()


def parse_name_glob(text: str, what: str = "name") -> str:
    """A name glob (`Ecal*_v?`) in its one form, runs of `*` collapsed; `BadRequest` unless it
    is made of the characters of a plain name, `*` and `?`."""
    if not _GLOB.fullmatch(text):
        raise BadRequest(f"{what}={text[:200]!r} is not a name glob", accepted=_GLOB_RULE)
    return re.sub(r"\*+", "*", text)


def _identifier(text: str, what: str) -> str:
    if not _IDENT.fullmatch(text):
        raise BadRequest(
            f"{what} {text[:200]!r} is not a plain identifier",
            accepted="letters, digits and '_', not starting with a digit",
        )
    return text


def _int(text: str, what: str, low: int, high: int) -> int:
    if not _INT.fullmatch(text):
        raise BadRequest(f"{what}={text[:100]!r} is not an integer", accepted=f"{low}..{high}")
    value = int(text)
    if not low <= value <= high:
        raise BadRequest(f"{what}={value} is out of range", accepted=f"{low}..{high}")
    return value


def parse_time(text: str, what: str = "snapshot") -> int:
    """ISO-8601 with a time zone, or Unix seconds, to microseconds since the epoch (UTC)."""
    if _INT.fullmatch(text):
        seconds = _int(text, what, 0, 253402300799)
        return seconds * 1_000_000
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise BadRequest(
            f"{what}={text[:100]!r} is not a time",
            accepted="ISO-8601 with a time zone (2026-05-01T12:00:00Z) or Unix seconds",
        ) from exc
    if moment.tzinfo is None:
        raise BadRequest(f"{what}={text[:100]!r} has no time zone", accepted="e.g. a trailing Z")
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    micros = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    if not 0 <= micros <= _LATEST_TIME:
        raise BadRequest(f"{what}={text[:100]!r} is out of range", accepted="1970 to 9999, UTC")
    return micros


def format_time(micros: int) -> str:
    """The canonical spelling of a time: `2026-05-01T12:00:00Z`, microseconds only if set."""
    seconds, fraction = divmod(micros, 1_000_000)
    stamp = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{fraction:06d}Z" if fraction else f"{stamp}Z"


def _parse_iovs(tag: str, params: list[tuple[str, str]]) -> TagIovs:
    found = _expect_params(params, ("channel", "since", "snapshot", "until"))
    since = _int(found["since"], "since", 0, INT64_MAX) if "since" in found else 0
    until = _int(found["until"], "until", 0, INT64_MAX) if "until" in found else None
    if until is not None and until <= since:
        raise BadRequest(f"until={until} is not after since={since}", accepted="since < until")
    channel = _int(found["channel"], "channel", 0, INT64_MAX) if "channel" in found else None
    snapshot = parse_time(found["snapshot"]) if "snapshot" in found else None
    return TagIovs(tag, since=since, until=until, channel=channel, snapshot=snapshot)


def _parse_resolve(globaltag: str, params: list[tuple[str, str]]) -> Resolve:
    found = _expect_params(params, ("lumi", "run", "snapshot", "time"))
    if "run" not in found:
        raise BadRequest("resolve needs run=R", accepted=ROUTES[4])
    return Resolve(
        globaltag,
        run=_int(found["run"], "run", 0, RUN_MAX),
        lumi=_int(found["lumi"], "lumi", 0, LUMI_MAX) if "lumi" in found else DEFAULT_LUMI,
        time=_int(found["time"], "time", 0, INT64_MAX) if "time" in found else None,
        snapshot=parse_time(found["snapshot"]) if "snapshot" in found else None,
    )


def _parse_diff(params: list[tuple[str, str]]) -> GlobalTagDiff:
    found = _expect_params(params, ("a", "a_snapshot", "b", "b_snapshot"))
    if "a" not in found or "b" not in found:
        raise BadRequest("a diff needs a=GT and b=GT", accepted=ROUTES[-1])
    return GlobalTagDiff(
        _name(found["a"], "global tag"),
        _name(found["b"], "global tag"),
        a_snapshot=parse_time(found["a_snapshot"], "a_snapshot") if "a_snapshot" in found else None,
        b_snapshot=parse_time(found["b_snapshot"], "b_snapshot") if "b_snapshot" in found else None,
    )


def _parse_table_query(table: str, params: list[tuple[str, str]]) -> TableQuery:
    select: tuple[str, ...] = ()
    order: tuple[Order, ...] = ()
    limit: int | None = None
    filters: list[Filter] = []
    seen: set[str] = set()
    for key, raw in params:
        if key in ("select", "order", "limit"):
            if key in seen:
                raise BadRequest(f"parameter {key!r} given more than once")
            seen.add(key)
        value = _decode(raw)
        if key == "select":
            select = tuple(_identifier(c, "column") for c in value.split(","))
            if len(set(select)) != len(select):
                raise BadRequest(f"select={value[:200]!r} names a column twice")
        elif key == "order":
            order = tuple(_order(item) for item in value.split(","))
        elif key == "limit":
            limit = _int(value, "limit", 1, INT64_MAX)
        else:
            filters.append(_filter(_identifier(key, "column"), raw))
    unique = sorted(set(filters), key=lambda f: (f.column, f.render()))
    return TableQuery(table, select=select, filters=tuple(unique), order=order, limit=limit)


def _order(item: str) -> Order:
    column, _, direction = item.partition(".")
    if direction not in ("", "asc", "desc"):
        raise BadRequest(f"order {item[:100]!r} has no direction", accepted=["asc", "desc"])
    return Order(_identifier(column, "column"), descending=direction == "desc")


_ESCAPED_UNRESERVED = re.compile(r"%(2[dDeE]|3[0-9]|[46][1-9a-fA-F]|[57][0-9aA]|5[fF]|7[eE])")


def _unescape_unreserved(raw: str) -> str:
    """Undo percent-escapes of unreserved characters: they mean the same (RFC 3986 §6.2.2.2)."""
    return _ESCAPED_UNRESERVED.sub(lambda m: chr(int(m.group(1), 16)), raw)


def _filter(column: str, raw: str) -> Filter:
    """`op.value` from a raw (still percent-encoded) query value."""
    raw_op, dot, raw_value = _unescape_unreserved(raw).partition(".")
    op = _decode(raw_op)
    if not dot or op not in FILTER_OPS:
        raise BadRequest(
            f"filter {column}={_decode(raw)[:100]!r} has no known operator",
            accepted=list(FILTER_OPS),
        )
    if op == "in":
        # The list's own "(", "," and ")" are literal; escaped ones (%2C) belong to an item.
        if not (len(raw_value) >= 2 and raw_value[0] == "(" and raw_value[-1] == ")"):
            raise BadRequest(f"{column}=in.{raw_value[:100]} needs a list", accepted="in.(a,b,c)")
        inner = raw_value[1:-1]
        items = [_decode(item) for item in inner.split(",")] if inner else []
        if "" in items:
            raise BadRequest(
                f"{column}=in.{raw_value[:100]} has an empty item", accepted="in.(a,b,c)"
            )
        return Filter(column, op, tuple(sorted(set(items))))
    value = _decode(raw_value)
    if op == "is" and value not in IS_VALUES:
        raise BadRequest(f"{column}=is.{value[:100]} is not supported", accepted=list(IS_VALUES))
    return Filter(column, op, value)
