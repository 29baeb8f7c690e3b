"""Running wrk and reading its output, shared by the benchmark scripts of this directory.

The scripts are run as files (``.venv/bin/python benchmarks/NAME.py``), so this directory is on
``sys.path`` and they import this module as ``wrk``.

wrk runs with one thread (``-t1``) and ``--latency``; when ``taskset`` exists and CPU
:data:`WRK_CPU` is available it is pinned there, leaving the other core(s) to the server under
test.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "WRK_CPU",
    "BenchmarkError",
    "SocketErrors",
    "WrkResult",
    "can_pin",
    "find_wrk",
    "parse_wrk",
    "run_wrk",
    "wrk_command",
    "wrk_version",
]

WRK_CPU = 1
"""The CPU wrk is pinned to (the server under test gets the others)."""

# wrk 4.x: latencies print as us/ms/s/m/h, byte counts with binary (1024) prefixes.
_TIME_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}
_BINARY = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4, "P": 1024**5}
_MIB = 1024**2


class BenchmarkError(Exception):
    """The benchmark could not run (not: the server answered badly under load)."""


@dataclass
class SocketErrors:
    connect: int = 0
    read: int = 0
    write: int = 0
    timeout: int = 0

    @property
    def total(self) -> int:
        return self.connect + self.read + self.write + self.timeout


@dataclass
class WrkResult:
    requests: int
    duration_s: float
    bytes_read: int
    requests_per_sec: float
    transfer_mib_per_sec: float
    latency_ms: dict[str, float]
    non_2xx_3xx: int
    socket_errors: SocketErrors = field(default_factory=SocketErrors)

    @property
    def errors(self) -> int:
        return self.non_2xx_3xx + self.socket_errors.total


_REQUESTS = re.compile(
    r"^\s*(\d+) requests in ([\d.]+)(us|ms|s|m|h), ([\d.]+)([KMGTP]?)B read\s*$", re.M
)
_RPS = re.compile(r"^Requests/sec:\s+([\d.]+)\s*$", re.M)
_TRANSFER = re.compile(r"^Transfer/sec:\s+([\d.]+)([KMGTP]?)B\s*$", re.M)
_PERCENTILE = re.compile(r"^\s+(50|75|90|99)%\s+([\d.]+)(us|ms|s|m|h)\s*$", re.M)
_NON_2XX = re.compile(r"^\s*Non-2xx or 3xx responses:\s+(\d+)\s*$", re.M)
_SOCKET = re.compile(
    r"^\s*Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)\s*$", re.M
)


def parse_wrk(output: str) -> WrkResult:
    """Read the summary of `wrk --latency`; raise BenchmarkError if a required line is missing."""
    requests = _REQUESTS.search(output)
    rps = _RPS.search(output)
    transfer = _TRANSFER.search(output)
    percentiles = {f"p{m[1]}": float(m[2]) * _TIME_MS[m[3]] for m in _PERCENTILE.finditer(output)}
    if not (requests and rps and transfer) or not {"p50", "p99"} <= percentiles.keys():
        raise BenchmarkError(f"cannot read wrk's output (was --latency given?):\n{output}")
    non_2xx = _NON_2XX.search(output)
    sockets = _SOCKET.search(output)
    return WrkResult(
        requests=int(requests[1]),
        duration_s=float(requests[2]) * _TIME_MS[requests[3]] / 1000,
        bytes_read=round(float(requests[4]) * _BINARY[requests[5]]),
        requests_per_sec=float(rps[1]),
        transfer_mib_per_sec=float(transfer[1]) * _BINARY[transfer[2]] / _MIB,
        latency_ms=percentiles,
        non_2xx_3xx=int(non_2xx[1]) if non_2xx else 0,
        socket_errors=SocketErrors(*(int(n) for n in sockets.groups()))
        if sockets
        else SocketErrors(),
    )


def wrk_command(
    wrk: str, url: str, connections: int, seconds: int, pin: bool, script: Path | None = None
) -> list[str]:
    """`wrk -t1 -c{connections} -d{seconds}s --latency [-s script] URL`, under `taskset -c 1`
    if `pin`; the Lua `script` chooses each request's path."""
    command = [wrk, "-t1", f"-c{connections}", f"-d{seconds}s", "--latency"]
    command += [*(["-s", str(script)] if script else []), url]
    taskset = shutil.which("taskset")
    return [taskset, "-c", str(WRK_CPU), *command] if pin and taskset else command


def run_wrk(command: Sequence[str], seconds: int) -> str:
    """Run a wrk command line for at most `seconds` + 30 s; its stdout."""
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=seconds + 30, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise BenchmarkError(f"wrk did not finish within {seconds + 30} s") from exc
    if done.returncode != 0:
        raise BenchmarkError(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr}")
    return done.stdout


def can_pin() -> bool:
    """taskset exists and CPU 1 is one we may run on (so there is another core for the server)."""
    return shutil.which("taskset") is not None and WRK_CPU in os.sched_getaffinity(0)


def find_wrk() -> str | None:
    """wrk on PATH, else /usr/bin/wrk, else None."""
    return shutil.which("wrk") or ("/usr/bin/wrk" if Path("/usr/bin/wrk").exists() else None)


def wrk_version(wrk: str) -> str:
    done = subprocess.run([wrk, "--version"], capture_output=True, text=True, timeout=10)
    first = (done.stdout or done.stderr).strip().splitlines()
    return first[0] if first else "unknown"
