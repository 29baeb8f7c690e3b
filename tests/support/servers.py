"""Real servers for tests: PostgreSQL, Redis and `outpost` processes on free loopback ports.

Each server lives in its own temporary directory and is stopped (terminate, then kill) when
the context exits. Nothing here is a mock: the tests talk to what production runs.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from outpost.localstack import free_port

__all__ = [
    "PostgresServer",
    "free_port",
    "outpost_command",
    "postgres_server",
    "redis_server",
    "run_process",
    "wait_for_http",
]


def _postgres_bin(name: str) -> str:
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)
    found = candidates[0] if candidates else shutil.which(name)
    if not found:
        raise RuntimeError(f"{name} not found: install PostgreSQL (scripts/test does)")
    return found


def _as_postgres_user(command: list[str]) -> list[str]:
    """initdb and postgres refuse to run as root; drop to the `postgres` account if we are."""
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *command]
    return command


@dataclass(frozen=True)
class PostgresServer:
    host: str
    port: int
    user: str

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{self.user}@{self.host}:{self.port}/{database}"

    def execute(self, sql: str) -> None:
        """Run an administrative statement (CREATE DATABASE …) outside a transaction."""
        import psycopg

        with psycopg.connect(
            host=self.host, port=self.port, user=self.user, dbname="postgres", autocommit=True
        ) as conn:
            conn.execute(sql.encode())


@contextlib.contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    root = Path(tempfile.mkdtemp(prefix="outpost-pg-"))
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
    data, port, user = root / "data", free_port(), "outpost"
    subprocess.run(
        _as_postgres_user(
            [_postgres_bin("initdb"), "-D", str(data), "-U", user, "-A", "trust", "-E", "UTF8"]
        ),
        check=True,
        capture_output=True,
    )
    command = [
        _postgres_bin("postgres"),
        "-D",
        str(data),
        "-p",
        str(port),
        "-k",
        str(root),
        "-c",
        "listen_addresses=127.0.0.1",
        "-c",
        "fsync=off",
        "-c",
        "synchronous_commit=off",
        "-c",
        "full_page_writes=off",
        "-c",
        "max_connections=200",
    ]
    log = open(root / "postgres.log", "wb")  # noqa: SIM115 - closed in finally
    process = subprocess.Popen(_as_postgres_user(command), stdout=log, stderr=subprocess.STDOUT)
    server = PostgresServer("127.0.0.1", port, user)
    try:
        _wait_for_postgres(server, process, root / "postgres.log")
        yield server
    finally:
        # SIGQUIT to the postmaster itself (runuser does not pass it on): PostgreSQL's
        # immediate shutdown, with no final checkpoint; the data directory is deleted next.
        # SIGTERM's smart shutdown waits for every client to leave (one connection a test left
        # open held the session's end for 10 s), and even the fast one (SIGINT) writes out
        # every database the suite made (up to 12 s at the end of a full run).
        with contextlib.suppress(OSError, ValueError, IndexError):
            os.kill(int((data / "postmaster.pid").read_text().split()[0]), signal.SIGQUIT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(5)  # a SIGTERM to runuser while it ends costs its 2 s grace
        _stop(process)
        log.close()
        shutil.rmtree(root, ignore_errors=True)


def _wait_for_postgres(server: PostgresServer, process: subprocess.Popen[bytes], log: Path) -> None:
    import psycopg

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"postgres exited: {log.read_text(errors='replace')[-2000:]}")
        try:
            with psycopg.connect(
                host=server.host, port=server.port, user=server.user, dbname="postgres"
            ):
                return
        except psycopg.OperationalError:
            time.sleep(0.1)
    raise RuntimeError(f"postgres did not start in 30 s: {log.read_text(errors='replace')[-2000:]}")


def _stop(process: subprocess.Popen[bytes], timeout: float = 10) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_for_http(
    url: str, process: subprocess.Popen[bytes] | None = None, timeout: float = 30
) -> None:
    """Poll `url` until it answers 200; fail early if `process` dies."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before {url} answered")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer in {timeout} s")


@contextlib.contextmanager
def run_process(
    args: Sequence[str],
    log: Path,
    ready_url: str | None = None,
    env: dict[str, str] | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    """Start `args` (e.g. the outpost CLI) with output to `log`; stop it on exit."""
    with open(log, "wb") as out:
        process = subprocess.Popen(list(args), stdout=out, stderr=subprocess.STDOUT, env=env)
        try:
            if ready_url:
                try:
                    wait_for_http(ready_url, process)
                except RuntimeError as exc:
                    raise RuntimeError(
                        f"{exc}\n{log.read_text(errors='replace')[-3000:]}"
                    ) from None
            yield process
        finally:
            _stop(process)


def outpost_command(*args: str) -> list[str]:
    """The `outpost` CLI of this interpreter's environment."""
    return [sys.executable, "-m", "outpost.cli", *args]


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    """A real redis-server on a free loopback port, no persistence; yields its URL."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server not found: install Redis (scripts/test does)")
    root = Path(tempfile.mkdtemp(prefix="outpost-redis-"))
    port = free_port()
    command = [
        binary,
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(root),
        "--protected-mode",
        "yes",
    ]
    with open(root / "redis.log", "wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_for_port(port, process)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        _stop(process)
        shutil.rmtree(root, ignore_errors=True)


def _wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server on port {port} exited with {process.returncode}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port} after {timeout} s")
