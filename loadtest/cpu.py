"""CPU time spent by process trees, from /proc (Linux): what each side of a storm cost.

On a shared 2-core machine a cache that spends less CPU leaves more to the load generator, so
the caches' CPU seconds per run explain a time to configure better than wall time alone, and
vary less with the neighbours of a VM. A tree is a process and all its descendants (granian's
workers are children of the process the stack started).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

__all__ = ["tree_cpu_seconds"]

_TICKS = os.sysconf("SC_CLK_TCK")


def _stat(pid: int, proc: Path) -> tuple[int, float] | None:
    """(parent pid, CPU seconds) of one process and of its children it has waited for; None
    once it is gone."""
    try:
        text = (proc / str(pid) / "stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    fields = text[text.rindex(")") + 2 :].split()  # after the command, which may hold spaces
    ppid = int(fields[1])
    utime, stime, cutime, cstime = (int(f) for f in fields[11:15])
    return ppid, (utime + stime + cutime + cstime) / _TICKS


def tree_cpu_seconds(pids: Iterable[int], proc: Path = Path("/proc")) -> float:
    """User + system CPU seconds of `pids`, of every live descendant of theirs, and of the
    descendants that have exited and been waited for."""
    stats = {}
    for entry in proc.iterdir():
        if entry.name.isdigit() and (found := _stat(int(entry.name), proc)) is not None:
            stats[int(entry.name)] = found
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in stats.items():
        children.setdefault(ppid, []).append(pid)
    total, seen, todo = 0.0, set(), list(pids)
    while todo:
        pid = todo.pop()
        if pid in seen or pid not in stats:
            continue
        seen.add(pid)
        total += stats[pid][1]
        todo.extend(children.get(pid, ()))
    return total
