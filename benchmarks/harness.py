"""What the benchmark scripts share besides wrk: the `outpost` command, a clean environment,
free loopback ports, log tails and the varnishd command line."""

from __future__ import annotations

import os
import shutil
import socket
import sys
from pathlib import Path

from wrk import BenchmarkError

__all__ = ["HOST", "clean_environment", "free_port", "outpost_command", "tail", "varnish_command"]

HOST = "127.0.0.1"


def outpost_command() -> list[str]:
    """The venv's `outpost` script, next to this interpreter (fallback: the one on PATH)."""
    beside = Path(sys.executable).parent / "outpost"
    found = str(beside) if beside.exists() else shutil.which("outpost")
    if found is None:
        raise BenchmarkError("the `outpost` command is not installed in this environment")
    return [found]


def clean_environment() -> dict[str, str]:
    """This environment without OUTPOST_* settings: every server runs on its defaults."""
    return {k: v for k, v in os.environ.items() if not k.startswith("OUTPOST_")}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def varnish_command(
    varnishd: str, work: Path, *, port: int, origin_port: int, storage_mb: int = 256
) -> list[str]:
    """`varnishd` in the foreground on HOST:`port`, its builtin VCL in front of
    HOST:`origin_port`, a `storage_mb` MiB malloc cache; creates `work`, its working directory."""
    work.mkdir(parents=True)
    command = [varnishd, "-F", "-a", f"{HOST}:{port}", "-b", f"{HOST}:{origin_port}"]
    command += ["-s", f"malloc,{storage_mb}m", "-n", str(work), "-p", "listen_depth=4096"]
    if os.geteuid() == 0:
        command += ["-j", "none"]  # no jail users needed for a throw-away instance
    return command
