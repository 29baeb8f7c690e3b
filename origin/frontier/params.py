"""Frontier request URLs → commands, read the way the servlet's `Command.parse` reads them.

The parameters follow `Frontier/` (path form) or `Frontier?` (query form; it wins when both are
present, as in the servlet). They split on `&`, then on the first `=`, and each side is
percent-decoded once (`+` is a space, as `java.net.URLDecoder` has it). Each `type=name:version[:
method]` starts a command; `encoding=` must come next; the command's other parameters (`p1`,
`ttl`, `freshkey`, …) run up to the next `type=`. Several commands make several payloads.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote_plus

__all__ = ["MAX_PAYLOADS", "Command", "FrontierError", "is_frontier_path", "parse_commands"]

MAX_PAYLOADS = 32  # frontier_client sends at most 32 payloads in one URL; bounds one request's work


class FrontierError(Exception):
    """A request refused before any payload is answered: the envelope's `<global_error>`."""


@dataclass(frozen=True)
class Command:
    """One payload's request: `type=obj_name:obj_version:method&encoding=…&<params>`."""

    obj_name: str
    obj_version: str
    method: str
    encoding: str
    params: tuple[tuple[str, str], ...] = ()

    def param(self, name: str) -> str | None:
        """The first value of parameter `name`, or None."""
        return next((value for key, value in self.params if key == name), None)


def is_frontier_path(path: str) -> bool:
    """Whether `path` is `/{servlet}/Frontier` or below it, for any servlet name."""
    parts = path.split("/", 3)
    return len(parts) >= 3 and parts[0] == "" and parts[1] != "" and parts[2] == "Frontier"


def parse_commands(raw: str, max_payloads: int = MAX_PAYLOADS) -> tuple[Command, ...]:
    """The commands of a raw (still percent-encoded) parameter string, at most `max_payloads`."""
    pairs = [_pair(token) for token in raw.split("&") if token]
    if not pairs:
        raise FrontierError("no query")
    commands: list[Command] = []
    index = 0
    while index < len(pairs):
        key, value = pairs[index]
        if key != "type":
            raise FrontierError(f"Unsupported request type [{key}]")
        name, version, method = _type_value(value)
        index += 1
        if index >= len(pairs):
            raise FrontierError(f"command parse completed prematurely! name: {name}")
        key, value = pairs[index]
        if key != "encoding":
            raise FrontierError(f"Unexpected parameter [{key}={value}]")
        encoding = value
        index += 1
        params: list[tuple[str, str]] = []
        while index < len(pairs) and pairs[index][0] not in ("type", "meta"):
            params.append(pairs[index])
            index += 1
        commands.append(Command(name, version, method, encoding, tuple(params)))
        if len(commands) > max_payloads:
            raise FrontierError(f"more than {max_payloads} payloads in one request")
    return tuple(commands)


def _pair(token: str) -> tuple[str, str]:
    key, sep, value = token.partition("=")
    key = unquote_plus(key, errors="replace").removeprefix("/")
    if not sep or not key:
        raise FrontierError(f"malformed parameter [{unquote_plus(token, errors='replace')[:80]}]")
    return key, unquote_plus(value, errors="replace")


def _type_value(value: str) -> tuple[str, str, str]:
    parts = [p for p in value.split(":") if p]  # StringTokenizer skips empty tokens
    if not parts:
        raise FrontierError("empty request type")
    name = parts[0]
    version = parts[1] if len(parts) > 1 else ""
    method = parts[2] if len(parts) > 2 else "DEFAULT"
    return name, version, method
