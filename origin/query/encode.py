"""Answer bodies: rows → deterministic JSON bytes (orjson; key order fixed by construction).

Times are rendered in the canonical spelling of `outpost.urls.format_time`, IOV keys as
integers. The same rows always give the same bytes, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from origin.query.sql import HISTORY_PAGE
from outpost.urls import (
    TAG_LIST_LIMIT,
    GlobalTagDiff,
    GlobalTagList,
    GlobalTagMap,
    History,
    PayloadInfo,
    Query,
    Resolve,
    RunList,
    RunQuery,
    TableQuery,
    TagInfo,
    TagIovs,
    TagList,
    format_time,
)

__all__ = ["answer_document", "encode_answer", "resolve_records"]

Row = Mapping[str, Any]


def _time(micros: int | None) -> str | None:
    return None if micros is None else format_time(micros)


def encode_answer(
    query: Query,
    head: Row,
    rows: Sequence[Row],
    *,
    columns: Sequence[str] = (),
    max_rows: int = 0,
) -> bytes:
    """The JSON body of `query`'s answer; `head` is its version row, `rows` its answer rows.

    `columns` and `max_rows` describe a table query: its selected columns and the row cap.
    """
    return orjson.dumps(answer_document(query, head, rows, columns=columns, max_rows=max_rows))


def answer_document(
    query: Query,
    head: Row,
    rows: Sequence[Row],
    *,
    columns: Sequence[str] = (),
    max_rows: int = 0,
) -> Any:
    """What `encode_answer` serialises, as Python objects: the conditions browser
    (`origin.ui`) shows exactly what the read API answers."""
    match query:
        case GlobalTagList():
            return {"globaltags": [_global_tag(r) for r in rows]}
        case GlobalTagMap(name=name):
            return {
                **_global_tag({"name": name, **head}),
                "map": [
                    {"record": r["record"], "label": r["label"], "tag": r["tag_name"]} for r in rows
                ],
            }
        case TagInfo():
            (row,) = rows
            return _tag_entry(row)
        case TagIovs():
            return {
                "tag": query.tag,
                "since": query.since,
                "until": query.until,
                "channel": query.channel,
                "snapshot": _time(query.snapshot),
                "iovs": [
                    {
                        "channel": r["channel"],
                        "since": r["since"],
                        "until": r["until"],
                        "payload": r["payload_hash"],
                        "size": r["size"],
                        "insertion_time": _time(r["insertion_time"]),
                    }
                    for r in rows
                ],
            }
        case Resolve():
            return {
                "globaltag": query.globaltag,
                "run": query.run,
                "lumi": query.lumi,
                "time": query.time,
                "snapshot": _time(query.snapshot),
                "records": resolve_records(rows),
            }
        case History():
            page = rows[:HISTORY_PAGE]
            return {
                query.of.removesuffix("s"): query.name,
                "after": query.after,
                "next": page[-1]["seq"] if len(rows) > HISTORY_PAGE else None,
                "history": [_history_entry(r) for r in page],
            }
        case RunQuery():
            (row,) = rows
            return _run_record(row, orjson.loads(row["records"]))
        case RunList():
            page = rows[: query.limit]
            return {
                "since": query.since,
                "limit": query.limit,
                "next": rows[query.limit]["run"] if len(rows) > query.limit else None,
                "runs": [_run_record(r) for r in page],
            }
        case TagList():
            return {
                "tags": [_tag_entry(r) for r in rows[:TAG_LIST_LIMIT]],
                "truncated": len(rows) > TAG_LIST_LIMIT,
            }
        case PayloadInfo():
            (row,) = rows
            return {
                "hash": row["hash"],
                "size": row["size"],
                "object_type": row["object_type"],
                "created_at": format_time(row["created_at"]),
                "by": row["who"],
            }
        case GlobalTagDiff():
            return _diff(query, rows)
        case TableQuery():
            limit = min(query.limit or max_rows, max_rows)
            return {
                "table": query.table,
                "columns": list(columns),
                "rows": [list(r.values()) for r in rows[:limit]],
                "truncated": len(rows) > limit,
            }
    raise TypeError(f"no JSON encoding for {query!r}")


def resolve_records(rows: Sequence[Row]) -> list[dict[str, Any]]:
    """The `records` of a resolve answer, from the rows of its answer statement: for every
    record and label (and channel), the tag, the IOV that covers the key and its payload. A
    run record's digest is computed from exactly these (`origin.writes`)."""
    return [
        {
            "record": r["record"],
            "label": r["label"],
            "tag": r["tag_name"],
            "time_type": r["time_type"],
            "channel": r["channel"],
            "since": r["since"],
            "until": r["until"],
            "payload": r["payload_hash"],
            "size": r["size"],
        }
        for r in rows
    ]


def _run_record(row: Row, records: list[Any] | None = None) -> dict[str, Any]:
    """A run record; without `records`, as the list of runs shows it."""
    document = {
        "run": row["run"],
        "globaltag": row["globaltag"],
        "lumi": row["lumi"],
        "digest": row["digest"],
        "snapshot": format_time(row["snapshot"]),
    }
    if records is not None:
        document["records"] = records
    return {
        **document,
        "attestation": orjson.loads(row["attestation"]),
        "by": row["who"],
        "created_at": format_time(row["created_at"]),
    }


def _tag_entry(row: Row) -> dict[str, Any]:
    return {
        "name": row["name"],
        "time_type": row["time_type"],
        "payload_type": row["payload_type"],
        "description": row["description"],
        "state": row["state"],
        "created_at": _time(row["created_at"]),
        "modified_at": _time(row["modified_at"]),
    }


def _diff(query: GlobalTagDiff, rows: Sequence[Row]) -> dict[str, Any]:
    """Pairs up the (side, record, label, tag) rows of both maps, in (record, label) order."""
    maps: dict[tuple[str, str], dict[str, str]] = {}
    for r in rows:
        maps.setdefault((r["record"], r["label"]), {})[r["side"]] = r["tag_name"]
    added: list[dict[str, Any]] = []
    removed: list[dict[str, Any]] = []
    changed: list[dict[str, Any]] = []
    unchanged = 0
    for (record, label), tags in maps.items():
        a, b = tags.get("a"), tags.get("b")
        if a is None:
            added.append({"record": record, "label": label, "tag": b})
        elif b is None:
            removed.append({"record": record, "label": label, "tag": a})
        elif a != b:
            changed.append({"record": record, "label": label, "a_tag": a, "b_tag": b})
        else:
            unchanged += 1
    return {
        "a": {"globaltag": query.a, "snapshot": _time(query.a_snapshot)},
        "b": {"globaltag": query.b, "snapshot": _time(query.b_snapshot)},
        "added": added,
        "removed": removed,
        "changed": changed,
        "unchanged": unchanged,
    }


def _history_entry(row: Row) -> dict[str, Any]:
    """A change as the feed gave it (`origin.feed`), with its position and who made it; the
    URLs it made new are left out."""
    entry = orjson.loads(row["entry"])
    entry.pop("urls", None)
    entry.pop("by", None)
    return {"seq": row["seq"], "by": row["who"], **entry}


def _global_tag(row: Row) -> dict[str, Any]:
    return {
        "name": row["name"],
        "state": row["state"],
        "description": row["description"],
        "created_at": _time(row["created_at"]),
        "modified_at": _time(row["modified_at"]),
    }
