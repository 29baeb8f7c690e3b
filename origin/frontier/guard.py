"""The SQL guard: a Frontier statement runs only if it is one SELECT over the allow-list.

Frontier carries the client's SQL text; that is the protocol. The servlet screens it by looking
for words ("drop ", "delete ", …). Here it is parsed (sqlglot, in the target database's dialect)
and refused unless it is exactly one SELECT (or a set operation of SELECTs) that

- reads only allow-listed tables and views (`origin.query.table`), unqualified by any schema,
  plus the CTEs of its own top-level WITH (not recursive, each seeing only the ones before it);
- calls only functions from a short list of pure ones (no side effects, no file or catalog
  access, nothing that runs SQL text), and casts only to plain numbers, text and bytes;
- holds no statement-like parts: no SELECT INTO, FOR UPDATE, PRAGMA, ATTACH, DML, DDL, SET;
- uses only `?` bind markers, one per bind value;
- builds no value much larger than what it reads: an expression may expand a value at most
  `MAX_EXPANSION` times (`hex` doubles, `||` and CONCAT add their operands), and one SELECT's
  columns together at most `MAX_ROW_EXPANSION` times. PostgreSQL has no memory limit per query,
  so this bounds what one row can cost (in SQLite, `SQLITE_LIMIT_LENGTH` also applies).

What runs is the SQL sqlglot generates from the checked tree, never the request's text, with
the bind values as driver parameters (`?` for sqlite3, `%s` for psycopg).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import sqlglot
from sqlglot import TokenType, exp
from sqlglot.dialects.dialect import Dialect
from sqlglot.errors import ErrorLevel, SqlglotError

from origin.frontier.rows import type_name_for_values

__all__ = [
    "DIALECTS",
    "MAX_EXPANSION",
    "MAX_ROW_EXPANSION",
    "MAX_TOKENS",
    "Prepared",
    "Refused",
    "expansion",
    "prepare",
]

# Parsing is CPU work a short URL can ask a lot of (zlib packs SQL tightly): bound it. Real
# conditions queries are a few hundred tokens; a 4,000-value IN list is about 8,000.
MAX_TOKENS = 20_000
MAX_TYPED_TOKENS = 2_000  # above this, SQLite's column types come from the values
# A 4 MiB payload through HEX seven times is 512 MiB: values may grow 4x (hex(hex(x)), a||b||c||d),
# a row 64x (64 columns of stored values, or 16 of them doubled twice).
MAX_EXPANSION = 4
MAX_ROW_EXPANSION = 64

DIALECTS = {"sqlite": "sqlite", "postgresql": "postgres"}  # SQLAlchemy dialect → sqlglot's

_NAMED = "outpost_bind_"  # the named placeholders the `?` become while parsing
_MARKER = "__outpost_bind_"  # their stand-ins in the generated text, replaced by driver markers
_MARKER_TEXT = re.compile(r"__outpost_bind_(\d+)__")

_ALLOWED_FUNCTIONS: tuple[type[exp.Expression], ...] = tuple(
    getattr(exp, name)
    for name in (
        # boolean connectives and predicates sqlglot models as functions
        "And",
        "Or",
        "Exists",
        # conditionals and conversions
        "Case",
        "If",
        "Coalesce",
        "Nullif",
        "Cast",
        "TryCast",
        "Greatest",
        "Least",
        # aggregates and window functions
        "Count",
        "Sum",
        "Min",
        "Max",
        "Avg",
        "RowNumber",
        "Rank",
        "DenseRank",
        "Lead",
        "Lag",
        "FirstValue",
        "LastValue",
        # scalar arithmetic and text
        "Abs",
        "Sign",
        "Round",
        "Floor",
        "Ceil",
        "Lower",
        "Upper",
        "Length",
        "Substring",
        "Trim",
        "Concat",
        "Hex",
    )
    if hasattr(exp, name)
)

_FORBIDDEN: tuple[type[exp.Expression], ...] = tuple(
    getattr(exp, name)
    for name in (
        "DDL",
        "DML",
        "Command",
        "Pragma",
        "Attach",
        "Detach",
        "Into",
        "Lock",
        "Set",
        "Use",
        "Transaction",
        "Commit",
        "Rollback",
        "Drop",
        "Alter",
        "Parameter",
        "SessionParameter",
        "Kill",
        "Describe",
        "Show",
        "Analyze",
        "TruncateTable",
        "Grant",
        "Revoke",
        "Comment",
        "LoadData",
        "Cache",
        "Uncache",
        "Refresh",
    )
    if hasattr(exp, name)
)

# types a CAST may name (a cast to anything else may run a catalog lookup or a user function)
_CASTABLE = frozenset(
    getattr(exp.DataType.Type, name)
    for name in (
        "BOOLEAN",
        "SMALLINT",
        "INT",
        "BIGINT",
        "FLOAT",
        "DOUBLE",
        "DECIMAL",
        "CHAR",
        "NCHAR",
        "VARCHAR",
        "NVARCHAR",
        "TEXT",
        "BINARY",
        "VARBINARY",
        "BLOB",
    )
    if hasattr(exp.DataType.Type, name)
)

# sqlglot data types → the Oracle type names of `origin.frontier.rows`
_TYPE_NAMES = {
    exp.DataType.Type.BOOLEAN: "NUMBER(1)",
    exp.DataType.Type.SMALLINT: "NUMBER(5)",
    exp.DataType.Type.INT: "NUMBER(10)",
    exp.DataType.Type.BIGINT: "NUMBER(20)",
    exp.DataType.Type.FLOAT: "BINARY_FLOAT",
    exp.DataType.Type.DOUBLE: "BINARY_DOUBLE",
    exp.DataType.Type.DECIMAL: "NUMBER",
    exp.DataType.Type.VARCHAR: "VARCHAR2",
    exp.DataType.Type.TEXT: "VARCHAR2",
    exp.DataType.Type.CHAR: "CHAR",
    exp.DataType.Type.BLOB: "BLOB",
    exp.DataType.Type.VARBINARY: "BLOB",
    exp.DataType.Type.BINARY: "BLOB",
}


class Refused(Exception):
    """A statement the guard does not run; the message says why (payload error)."""


@dataclass(frozen=True)
class Prepared:
    """A checked statement, ready for the driver."""

    sql: str  # generated for the target dialect, with the driver's bind markers
    params: tuple[str, ...]  # bind values, in the order of the markers in `sql`
    tables: frozenset[str]  # allow-listed tables and views the statement reads
    types: tuple[str | None, ...]  # the Frontier type of each output column, where the schema says


def prepare(
    sql: str,
    binds: Sequence[str],
    *,
    dialect: str,
    schema: Mapping[str, Mapping[str, str]],
    with_types: bool = False,
) -> Prepared:
    """Check `sql` against the allow-list `schema` (table → column → SQL type) and rewrite it.

    `dialect` is sqlglot's ("sqlite", "postgres"); `with_types` asks for the output columns' types
    from the schema (for SQLite, whose cursors do not report them).
    """
    if _MARKER.strip("_").lower() in sql.lower():
        raise Refused(f"identifiers containing {_NAMED!r} are reserved")
    try:
        return _prepare(sql, binds, dialect, schema, with_types)
    except RecursionError:
        raise Refused("the statement is nested too deeply") from None


def _prepare(
    sql: str,
    binds: Sequence[str],
    dialect: str,
    schema: Mapping[str, Mapping[str, str]],
    with_types: bool,
) -> Prepared:
    text, tokens = _name_placeholders(sql, len(binds), dialect)
    try:
        statements = [s for s in sqlglot.parse(text, read=dialect) if s is not None]
    except SqlglotError as exc:
        raise Refused(f"SQL syntax error: {_first_line(exc)}") from None
    if len(statements) != 1:
        raise Refused(f"expected exactly one statement, got {len(statements)}")
    (root,) = statements
    if not isinstance(root, exp.Select | exp.SetOperation):
        raise Refused(f"only SELECT statements are served, not {root.key.upper()}")
    tables = _check(root, schema, len(binds))
    _check_expansion(root)
    typed = with_types and tokens <= MAX_TYPED_TOKENS  # else the values tell the types
    types = _output_types(root, schema, dialect) if typed else ()
    for placeholder in list(root.find_all(exp.Placeholder)):
        index = int(str(placeholder.this).removeprefix(_NAMED))
        placeholder.replace(exp.column(f"{_MARKER}{index}__"))
    try:
        generated = root.sql(dialect=dialect, unsupported_level=ErrorLevel.RAISE, comments=False)
    except SqlglotError as exc:
        raise Refused(f"cannot run this statement here: {_first_line(exc)}") from None
    final, params = _driver_markers(generated, binds, dialect)
    return Prepared(final, params, frozenset(tables), types)


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__


def _name_placeholders(sql: str, count: int, dialect: str) -> tuple[str, int]:
    """Replace each `?` bind marker by a named placeholder numbered in text order.

    Returns the new text and the statement's number of tokens.
    """
    try:
        tokens = Dialect.get_or_raise(dialect).tokenize(sql)
    except SqlglotError as exc:
        raise Refused(f"SQL syntax error: {_first_line(exc)}") from None
    if len(tokens) > MAX_TOKENS:
        raise Refused(f"the statement is longer than {MAX_TOKENS} tokens")
    markers = [t for t in tokens if t.token_type == TokenType.PLACEHOLDER]
    if any(t.text != "?" for t in markers):
        raise Refused("only ? bind markers are supported")
    if len(markers) != count:
        raise Refused(f"the statement has {len(markers)} bind markers but {count} values")
    out, last = [], 0
    for index, token in enumerate(markers):
        out.append(sql[last : token.start])
        out.append(f":{_NAMED}{index}")
        last = token.end + 1
    out.append(sql[last:])
    return "".join(out), len(tokens)


def _check(root: exp.Expression, schema: Mapping[str, Mapping[str, str]], binds: int) -> set[str]:
    """Walk the whole tree; return the allow-listed tables read, or raise Refused."""
    ctes = _top_level_ctes(root)
    read: set[str] = set()
    for node in root.walk():
        if isinstance(node, _FORBIDDEN):
            raise Refused(f"{node.key.upper()} is not allowed in a Frontier query")
        if isinstance(node, exp.Placeholder):
            name = str(node.this or "")
            suffix = name.removeprefix(_NAMED)
            if name == suffix or not suffix.isdigit() or int(suffix) >= binds:
                raise Refused("only ? bind markers are supported")
        elif isinstance(node, exp.Identifier) and not node.quoted and str(node.this)[:1] in "$@:?":
            raise Refused("only ? bind markers are supported")  # SQLite reads these as markers
        elif isinstance(node, exp.DataType) and node.this not in _CASTABLE:
            raise Refused(f"type {node.sql()[:40]} is not allowed")
        elif isinstance(node, exp.Func) and not isinstance(node, _ALLOWED_FUNCTIONS):
            raise Refused(f"function {_function_name(node)} is not allowed")
        elif isinstance(node, exp.With) and (
            node.parent is None or node.parent is not _with_owner(root)
        ):
            raise Refused("WITH is only allowed at the top of the statement")
        elif isinstance(node, exp.Table):
            table = _table(node, ctes, schema)
            if table is not None:
                read.add(table)
    return read


def expansion(node: exp.Expression) -> int:
    """How many times over the largest value it reads `node` may build a value (at least 1).

    HEX doubles its argument, `||` and CONCAT add their operands up; any other expression is as
    large as its largest part (its intermediate values exist while it runs).
    """
    if isinstance(node, exp.Hex):
        return 2 * expansion(node.this)
    if isinstance(node, exp.DPipe | exp.Concat | exp.ConcatWs):
        return sum(expansion(part) for part in node.iter_expressions()) or 1
    return max((expansion(part) for part in node.iter_expressions()), default=1)


def _check_expansion(root: exp.Expression) -> None:
    grown = expansion(root)
    if grown > MAX_EXPANSION:
        raise Refused(
            f"the statement expands a value {grown} times; at most {MAX_EXPANSION} times"
            " (HEX doubles a value, || and CONCAT add values up)"
        )
    for select in root.find_all(exp.Select):
        row = sum(expansion(column) for column in select.expressions)
        if row > MAX_ROW_EXPANSION:
            raise Refused(
                f"a row of the statement is {row} values large; at most {MAX_ROW_EXPANSION}"
            )


def _function_name(node: exp.Func) -> str:
    if isinstance(node, exp.Anonymous):
        return str(node.name).upper()
    return node.sql_name()


def _with_of(node: exp.Expression) -> exp.Expression | None:
    found = node.args.get("with_", node.args.get("with"))  # the key's name varies by version
    return found if isinstance(found, exp.Expression) else None


def _with_owner(root: exp.Expression) -> exp.Expression:
    """The node a top-level WITH hangs on: the root, or the first SELECT of a set operation."""
    if _with_of(root) is not None:
        return root
    node = root
    while isinstance(node, exp.SetOperation):
        node = node.this
    return node


def _top_level_ctes(root: exp.Expression) -> list[tuple[str, exp.CTE]]:
    with_ = _with_of(_with_owner(root))
    if with_ is None:
        return []
    if with_.args.get("recursive"):
        raise Refused("WITH RECURSIVE is not allowed")
    ctes = []
    for cte in with_.expressions:
        alias = cte.args.get("alias")
        identifier = alias.this if isinstance(alias, exp.TableAlias) else None
        if not isinstance(identifier, exp.Identifier):
            raise Refused("a CTE needs a name")
        ctes.append((_normalise(identifier), cte))
    return ctes


def _normalise(identifier: exp.Identifier) -> str:
    """Unquoted names fold to lower case (as PostgreSQL and SQLite compare them)."""
    name = str(identifier.this)
    return name if identifier.quoted else name.lower()


def _table(
    node: exp.Table, ctes: list[tuple[str, exp.CTE]], schema: Mapping[str, Mapping[str, str]]
) -> str | None:
    """The allow-listed table `node` reads, None for a reference to a visible CTE."""
    if not isinstance(node.this, exp.Identifier):
        raise Refused(f"table functions are not allowed: {node.this.sql()[:80]}")
    if node.args.get("db") is not None or node.args.get("catalog") is not None:
        raise Refused(f"schema-qualified table {node.sql()[:80]} is not readable")
    name = _normalise(node.this)
    if name in _visible_ctes(node, ctes):
        return None
    if name not in schema:
        raise Refused(f"table {name!r} is not readable; readable: {', '.join(sorted(schema))}")
    return name


def _visible_ctes(node: exp.Expression, ctes: list[tuple[str, exp.CTE]]) -> set[str]:
    """CTE names a table reference can mean: all of them, but inside a CTE only earlier ones."""
    bodies = {id(cte): index for index, (_, cte) in enumerate(ctes)}
    parent = node.parent
    while parent is not None:
        if id(parent) in bodies:
            return {name for name, _ in ctes[: bodies[id(parent)]]}
        parent = parent.parent
    return {name for name, _ in ctes}


def _driver_markers(
    generated: str, binds: Sequence[str], dialect: str
) -> tuple[str, tuple[str, ...]]:
    """Swap the stand-ins for the driver's markers; the values follow the markers' order."""
    if dialect == "postgres":
        generated = generated.replace("%", "%%")  # psycopg reads % as the start of a marker
    marker = "%s" if dialect == "postgres" else "?"
    order: list[int] = []

    def swap(match: re.Match[str]) -> str:
        order.append(int(match.group(1)))
        return marker

    final = _MARKER_TEXT.sub(swap, generated)
    if sorted(set(order)) != list(range(len(binds))) or any(i >= len(binds) for i in order):
        raise Refused("the bind markers could not be placed")
    return final, tuple(binds[i] for i in order)


def _output_types(
    root: exp.Expression, schema: Mapping[str, Mapping[str, str]], dialect: str
) -> tuple[str | None, ...]:
    """Each output column's type name from the schema, None where it cannot be told."""
    from sqlglot.optimizer.annotate_types import annotate_types
    from sqlglot.optimizer.qualify import qualify

    try:
        tree = qualify(
            root.copy(),
            schema={t: dict(c) for t, c in schema.items()},
            dialect=dialect,
            validate_qualify_columns=False,
            quote_identifiers=False,
            identify=False,
        )
        tree = annotate_types(tree, schema={t: dict(c) for t, c in schema.items()}, dialect=dialect)
    except (SqlglotError, KeyError, ValueError, TypeError, AttributeError):
        return ()
    if not isinstance(tree, exp.Query):
        return ()
    names: list[str | None] = []
    for column in tree.selects:
        kind = column.type.this if isinstance(column.type, exp.DataType) else None
        if isinstance(column.unalias(), exp.Null):
            names.append(type_name_for_values([]))
        else:
            names.append(_TYPE_NAMES.get(kind) if kind is not None else None)
    return tuple(names)
