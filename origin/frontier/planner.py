"""Planning a Frontier request: its commands, their SQL, each statement checked by the guard.

`plan_request` is the pure part: the commands of the URL (at most `max_payloads`), each `p1`
inflated, the SQL of all payloads together bounded (`max_sql_bytes`) before any of it is parsed,
then each statement checked while the request's deadline holds. Parsing is the CPU cost of a
Frontier request and holds the GIL, so `Planner` runs it in worker processes of its own: a
request full of SQL to parse never slows the origin's event loop (and `/v1`) down.
"""

from __future__ import annotations

import asyncio
import functools
import multiprocessing
import os
import threading
import time
from collections.abc import Mapping
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

from origin.frontier.codec import decode_p1, split_binds
from origin.frontier.envelope import EncodingError, parse_encoding
from origin.frontier.guard import Refused, prepare
from origin.frontier.limits import Deadline, check_sql_budget
from origin.frontier.params import MAX_PAYLOADS, Command, FrontierError, parse_commands
from origin.frontier.run import Plan
from outpost.errors import ServiceUnavailable

__all__ = ["PlannedPayload", "Planner", "Rules", "plan_request"]


@dataclass(frozen=True)
class Rules:
    """What planning needs to know: the database's dialect and allow-list, and the limits."""

    dialect: str
    schema: Mapping[str, Mapping[str, str]]
    max_payloads: int = MAX_PAYLOADS
    max_sql_bytes: int = 64 * 1024


@dataclass(frozen=True)
class PlannedPayload:
    command: Command
    encoded: bool  # the encoding is one the servlet knows (so its encoder, and md5, exist)
    level: int | None  # zlib level of the encoding; None: not compressed (or not known)
    plan: Plan


def plan_request(raw: str, deadline: Deadline, rules: Rules) -> list[PlannedPayload]:
    """Every payload's plan; errors the servlet raises before any payload are FrontierError."""
    commands = parse_commands(raw, rules.max_payloads)
    statements = [_statement(command) for command in commands]
    check_sql_budget([sql for sql, _ in statements], rules.max_sql_bytes)
    return [
        _plan(command, sql, binds, deadline, rules)
        for command, (sql, binds) in zip(commands, statements, strict=True)
    ]


def _statement(command: Command) -> tuple[str, tuple[str, ...]]:
    if (command.obj_name, command.obj_version) != ("frontier_request", "1"):
        raise FrontierError(f"Unsupported command: {command.obj_name}:{command.obj_version}")
    if command.param("sec") == "sig":
        raise FrontierError("signed responses (sec=sig) are not supported by this server")
    p1 = command.param("p1")
    if p1 is None:
        raise FrontierError("missing parameter p1")
    return split_binds(decode_p1(p1))


def _plan(
    command: Command, sql: str, binds: tuple[str, ...], deadline: Deadline, rules: Rules
) -> PlannedPayload:
    """Check one statement (unless the request's deadline has passed already)."""
    try:
        level = parse_encoding(command.encoding)
    except EncodingError as exc:
        return PlannedPayload(command, False, None, Plan(error=str(exc)))
    if command.method != "DEFAULT":
        return PlannedPayload(command, True, level, Plan(error=f"Unknown method {command.method}"))
    if deadline.passed(time.monotonic()):
        return PlannedPayload(command, True, level, Plan(error=deadline.message()))
    try:
        prepared = prepare(
            sql,
            binds,
            dialect=rules.dialect,
            schema=rules.schema,
            with_types=rules.dialect == "sqlite",
        )
    except Refused as exc:
        return PlannedPayload(command, True, level, Plan(error=f"Query refused: {exc}"))
    plan = Plan(prepared=prepared, empty_is_error=command.param("ttl") == "forever")
    return PlannedPayload(command, True, level, plan)


class Planner:
    """`plan_request` in `workers` processes of its own, started when first needed.

    One pool per size in an origin process, shared by its apps and ended with it. (The deadline
    holds in the workers: CLOCK_MONOTONIC is one clock for every process of the host.)
    """

    def __init__(self, rules: Rules, workers: int) -> None:
        self.rules = rules
        self.workers = workers

    async def plan(self, raw: str, deadline: Deadline) -> list[PlannedPayload]:
        pool = _pool(self.workers)
        call = functools.partial(plan_request, raw, deadline, self.rules)
        try:
            return await asyncio.get_running_loop().run_in_executor(pool, call)
        except BrokenProcessPool:  # a worker died (killed, out of memory): start afresh
            _discard(self.workers, pool)
            raise ServiceUnavailable(
                "the Frontier SQL checker restarted; retry", headers={"Retry-After": "1"}
            ) from None


_pools: dict[int, ProcessPoolExecutor] = {}
_pools_lock = threading.Lock()


def _pool(workers: int) -> ProcessPoolExecutor:
    with _pools_lock:
        pool = _pools.get(workers)
        if pool is None:
            context = multiprocessing.get_context("spawn")  # no copy of the origin's threads
            pool = _pools[workers] = ProcessPoolExecutor(
                workers, mp_context=context, initializer=_end_with, initargs=(os.getpid(),)
            )
        return pool


def _end_with(parent: int) -> None:
    """In a worker: exit when the origin process is gone. A killed origin (SIGKILL, out of
    memory) cannot shut its pool down, and its workers would wait on their queue for ever."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, name="outpost-planner-watch", daemon=True).start()


def _discard(workers: int, pool: ProcessPoolExecutor) -> None:
    with _pools_lock:
        if _pools.get(workers) is pool:
            del _pools[workers]
    pool.shutdown(wait=False, cancel_futures=True)
