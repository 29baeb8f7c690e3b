"""CPU seconds of process trees, read from /proc: a made-up /proc, then real processes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from loadtest.cpu import tree_cpu_seconds

TICKS = os.sysconf("SC_CLK_TCK")


def fake_process(proc: Path, pid: int, ppid: int, command: str, ticks: list[int]) -> None:
    """/proc/<pid>/stat: pid (comm) state ppid …, utime stime cutime cstime as fields 14 to 17."""
    fields = ["S", str(ppid), *["0"] * 9, *map(str, ticks), *["0"] * 30]
    (proc / str(pid)).mkdir()
    (proc / str(pid) / "stat").write_text(f"{pid} ({command}) {' '.join(fields)}\n")


def test_a_tree_is_the_process_its_live_descendants_and_the_children_it_reaped(
    tmp_path: Path,
) -> None:
    fake_process(tmp_path, 10, 1, "granian main", [TICKS, 0, 0, 2 * TICKS])  # 2 s reaped
    fake_process(tmp_path, 11, 10, "worker (1) x", [2 * TICKS, TICKS, 0, 0])  # spaces, parens
    fake_process(tmp_path, 12, 11, "grandchild", [0, TICKS // 2, 0, 0])
    fake_process(tmp_path, 20, 1, "someone else", [50 * TICKS, 0, 0, 0])
    (tmp_path / "self").mkdir()  # not a process directory

    assert tree_cpu_seconds([10], proc=tmp_path) == pytest.approx(6.5)
    assert tree_cpu_seconds([11, 20], proc=tmp_path) == pytest.approx(53.5)
    assert tree_cpu_seconds([10, 11], proc=tmp_path) == pytest.approx(6.5)  # each once
    assert tree_cpu_seconds([99], proc=tmp_path) == 0.0  # gone: nothing


def test_cpu_burnt_by_a_live_grandchild_counts_for_its_grandparent() -> None:
    burn = (
        "import sys, time\n"
        "end = time.process_time() + 0.5\n"
        "while time.process_time() < end: pass\n"
        "print('burnt', flush=True)\n"
        "sys.stdin.read()\n"
    )
    parent = (
        "import subprocess, sys\n"
        f"child = subprocess.Popen([sys.executable, '-c', {burn!r}], stdout=subprocess.PIPE)\n"
        "print(child.stdout.readline().decode(), end='', flush=True)\n"
        "sys.stdin.read()\n"
    )
    with subprocess.Popen(
        [sys.executable, "-c", parent], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    ) as process:
        try:
            assert process.stdout is not None and process.stdout.readline() == "burnt\n"
            assert tree_cpu_seconds([process.pid]) >= 0.5
            assert tree_cpu_seconds([os.getpid()]) >= 0.5  # the test process is their ancestor
        finally:
            process.kill()
