"""The files `outpost db load` reads: JSON, or YAML held to JSON's types.

Plain `yaml.safe_load` is YAML 1.1: `no` and `off` are false, `010` is 8, `1:30` is 90, a
64-zero hash is the integer 0, a repeated key silently wins and aliases expand without bound.
Here a YAML scalar is null (`null`, `~`, empty), a boolean (`true`, `false`), a plain decimal
integer (`0` or `-?[1-9][0-9]*`) or else a string; keys are strings and unique; anchors, aliases
and explicit tags are refused. JSON keys must be unique too, and NaN/Infinity are refused.
Every error names the file and where in it. Pure but for reading the one file.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode, Node, ScalarNode

from outpost.errors import BadRequest
from outpost.urls import DECIMAL

__all__ = ["StrictLoader", "read_document"]

_ACCEPTED = (
    "JSON, or YAML whose scalars are null, true, false, decimal integers (no leading zeros, "
    "no '_' or ':') and strings; unique string keys; no anchors, aliases or !!tags"
)


class StrictLoader(yaml.SafeLoader):
    """A SafeLoader that resolves only JSON's types and refuses what would change a value."""

    yaml_implicit_resolvers: dict[Any, Any] = {}  # noqa: RUF012 (none of SafeLoader's)

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        event = self.peek_event()  # type: ignore[no-untyped-call]
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise ConstructorError(
                None, None, "anchors and aliases are not accepted", event.start_mark
            )
        if getattr(event, "tag", None) is not None:
            raise ConstructorError(None, None, "explicit tags are not accepted", event.start_mark)
        return super().compose_node(parent, index)

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[str] = set()
        for key_node, _ in node.value:
            if not isinstance(key_node, ScalarNode) or key_node.tag != "tag:yaml.org,2002:str":
                raise ConstructorError(
                    None, None, "a key must be a string (quote it)", key_node.start_mark
                )
            if key_node.value in seen:
                raise ConstructorError(
                    None, None, f"duplicate key {key_node.value[:100]!r}", key_node.start_mark
                )
            seen.add(key_node.value)
        return super().construct_mapping(node, deep)


StrictLoader.add_implicit_resolver(
    "tag:yaml.org,2002:null", re.compile(r"^(?:~|null|)$"), ["~", "n", ""]
)
StrictLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|false)$"), list("tf")
)
StrictLoader.add_implicit_resolver(
    "tag:yaml.org,2002:int", re.compile(rf"^(?:{DECIMAL.pattern})$"), list("-0123456789")
)


def read_document(path: Path) -> Any:
    """The parsed file: JSON if it ends in `.json`, strict YAML otherwise."""
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise BadRequest(f"cannot read {path}: {exc.strerror}") from exc
    try:
        if path.suffix.lower() == ".json":
            return json.loads(text, object_pairs_hook=_unique_pairs, parse_constant=_no_constant)
        return yaml.load(text, Loader=StrictLoader)  # StrictLoader is a SafeLoader
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "somewhere"
        problem = ", ".join(str(p) for p in (exc.context, exc.problem) if p)
        raise BadRequest(f"{path}: {where}: {problem}", accepted=_ACCEPTED) from exc
    except (ValueError, yaml.YAMLError) as exc:  # JSONDecodeError is a ValueError
        kind = "JSON" if path.suffix.lower() == ".json" else "strict YAML"
        raise BadRequest(f"{path}: not valid {kind}: {exc}", accepted=_ACCEPTED) from exc


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    document = dict(pairs)
    if len(document) != len(pairs):
        keys = [key for key, _ in pairs]
        twice = sorted({key for key in keys if keys.count(key) > 1})
        raise ValueError(f"duplicate keys {twice} in one object")
    return document


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")
