"""What a hostile client's connections cost `outpost proxy` and `outpost origin`: figures for
docs/security.md, "Connections: header size, header time, connection count".

1. huge header: for each server, one connection streams a header of `--header-mib` MiB (1 MiB
   writes) until the server answers or closes; prints what was sent, the first answer line, the
   seconds it took and the server's peak RSS (VmHWM) before and after.
2. idle flood: a proxy started under `prlimit --nofile=N:N` (`--nofile`, 1024) gets `--idle`
   (1100) connections that send nothing; prints when /_outpost/healthz first answers and with
   what (503 from the cap, 200 once the header timeout closed the idle ones), within `--wait`.

Run it with PYTHONPATH pointing at an older tree to measure that tree (`git archive REV`).

    .venv/bin/python benchmarks/connection_limits.py [--header-mib 64] [--idle 1100]
        [--nofile 1024] [--header-timeout 5] [--wait 30]
"""

from __future__ import annotations

import argparse
import contextlib
import select
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
from harness import HOST, clean_environment, free_port, outpost_command, tail

UNUSED_UPSTREAM = "http://127.0.0.1:9"  # only the health route is used


def vm_hwm_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


@contextlib.contextmanager
def server(args: list[str], log: Path, env: dict[str, str]) -> Iterator[tuple[str, int]]:
    """Start `args` (port appended), wait for its health route; yield its URL and pid."""
    port = free_port()
    url = f"http://{HOST}:{port}"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [*args, "--port", str(port)], stdout=out, stderr=subprocess.STDOUT, env=env
        )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(url + "/_outpost/healthz", timeout=1).status_code == 200:
                    break
            if process.poll() is not None:
                raise SystemExit(f"{args[1]} exited:\n{tail(log)}")
            time.sleep(0.1)
        yield url, process.pid
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def stream_header(url: str, pid: int, mib: int) -> str:
    host, port = url.removeprefix("http://").split(":")
    before = vm_hwm_mib(pid)
    started = time.monotonic()
    sock = socket.create_connection((host, int(port)), timeout=60)
    sock.sendall(b"GET /_outpost/healthz HTTP/1.1\r\nHost: node\r\nX-Big: ")
    sent = 0
    with contextlib.suppress(OSError):
        while sent < mib << 20 and not select.select([sock], [], [], 0)[0]:
            sock.sendall(b"a" * (1 << 20))
            sent += 1 << 20
        if sent >= mib << 20:
            sock.sendall(b"\r\n\r\n")
    try:
        first = sock.recv(4096).split(b"\r\n", 1)[0].decode("latin-1") or "(closed)"
    except OSError as exc:
        first = f"({exc.strerror})"
    seconds = time.monotonic() - started
    sock.close()
    return (
        f"sent {sent / (1 << 20):.0f} MiB, answer {first!r} after {seconds:.2f} s, "
        f"VmHWM {before:.0f} -> {vm_hwm_mib(pid):.0f} MiB"
    )


def idle_flood(url: str, idle: int, wait: float) -> str:
    host, port = url.removeprefix("http://").split(":")
    flood = []
    started = time.monotonic()
    for _ in range(idle):
        with contextlib.suppress(OSError):
            flood.append(socket.create_connection((host, int(port)), timeout=5))
    seen: dict[str, tuple[float, int]] = {}  # status -> (first seen, times)
    while time.monotonic() - started < wait:
        try:
            status = str(httpx.get(url + "/_outpost/healthz", timeout=2).status_code)
        except httpx.TransportError as exc:
            status = type(exc).__name__
        first, times = seen.get(status, (time.monotonic() - started, 0))
        seen[status] = (first, times + 1)
        if status == "200":
            break
        time.sleep(0.2)
    for sock in flood:
        sock.close()
    answers = ", ".join(f"{s} x{n} (first at {t:.1f} s)" for s, (t, n) in seen.items())
    return f"{len(flood)} idle connections opened; healthz: {answers}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--header-mib", type=int, default=64)
    parser.add_argument("--idle", type=int, default=1100)
    parser.add_argument("--nofile", type=int, default=1024)
    parser.add_argument("--header-timeout", default="5")
    parser.add_argument("--wait", type=float, default=30)
    args = parser.parse_args()
    env = clean_environment()
    outpost = outpost_command()
    with tempfile.TemporaryDirectory(prefix="outpost-limits-") as tmp:
        root = Path(tmp)
        db = f"sqlite:///{root / 'conditions.sqlite'}"
        origin = [*outpost, "origin", "--db", db, "--sample", "--log-level", "warning"]
        proxy = [*outpost, "proxy", "--name", "node", "--upstream", UNUSED_UPSTREAM]
        for name, command in (("proxy", proxy), ("origin", origin)):
            with server(command, root / f"{name}.log", env) as (url, pid):
                print(f"{name} huge header: {stream_header(url, pid, args.header_mib)}")
        flood_env = {**env, "OUTPOST_PROXY_HEADER_TIMEOUT_SECONDS": args.header_timeout}
        limited = ["prlimit", f"--nofile={args.nofile}:{args.nofile}", *proxy]
        with server(limited, root / "flood.log", flood_env) as (url, _):
            print(f"proxy, ulimit -n {args.nofile}: {idle_flood(url, args.idle, args.wait)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
