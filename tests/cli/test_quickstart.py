"""The README's quick start, end to end: `outpost up --env-file` in one process, a shell that
sources the file in another, and `--ports` (free, and taken)."""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from outpost.localstack import free_port


def clean_environment() -> dict[str, str]:
    """This process's environment without run control's token: `up` must make its own."""
    return {k: v for k, v in os.environ.items() if k != "OUTPOST_RUN_CONTROL_TOKEN"}


def outpost_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "outpost", *args]


@pytest.fixture
def database(tmp_path: Path, sqlite_templates: dict[bool, Path]) -> str:
    db = tmp_path / "conditions.sqlite"
    db.write_bytes(sqlite_templates[True].read_bytes())
    return f"sqlite:///{db}"


def start_up(*args: str) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    """`outpost up --json …` running, and what it printed once every tier answered."""
    process = subprocess.Popen(
        outpost_command("up", "--json", *args),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=clean_environment(),
    )
    assert process.stdout is not None and process.stderr is not None
    line = process.stdout.readline()
    assert line, process.stderr.read().decode()
    return process, orjson.loads(line)


def stop_up(process: subprocess.Popen[bytes], signum: int = signal.SIGTERM) -> int:
    if process.poll() is None:
        process.send_signal(signum)
    code = process.wait(30)
    for stream in (process.stdout, process.stderr):
        if stream is not None:
            stream.close()
    return code


@pytest.fixture
def up_with_env_file(tmp_path: Path, database: str) -> Iterator[tuple[dict[str, Any], Path]]:
    env_file = tmp_path / "outpost.env"
    process, described = start_up("--nodes", "1", "--db", database, "--env-file", str(env_file))
    described["process"] = process
    try:
        yield described, env_file
    finally:
        stop_up(process)


def in_shell(script: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """`script` in a fresh bash, with `outpost` meaning this interpreter's, as on PATH."""
    shim = cwd / "bin"
    shim.mkdir(exist_ok=True)
    (shim / "outpost").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m outpost "$@"\n')
    (shim / "outpost").chmod(0o755)
    env = {**clean_environment(), "PATH": f"{shim}:{os.environ['PATH']}"}
    return subprocess.run(
        ["bash", "-c", script], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def test_the_env_file_is_private_and_its_exports_reach_every_tier(
    up_with_env_file: tuple[dict[str, Any], Path], tmp_path: Path
) -> None:
    described, env_file = up_with_env_file
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    assert described["env_file"] == str(env_file)
    shell = in_shell(
        f'. {env_file} && printf "%s\\n" "$ORIGIN" "$SITE" "$NODE" "$NODES" '
        '"$OUTPOST_SERVERS" "$OUTPOST_PROXIES" "$OUTPOST_RUN_CONTROL_TOKEN"',
        tmp_path,
    )
    assert shell.returncode == 0, shell.stderr
    origin, site, node, nodes, servers, proxies, token = shell.stdout.splitlines()
    assert (origin, site, nodes.split()) == (
        described["origin"],
        described["site"],
        described["nodes"],
    )
    assert node == described["nodes"][0]
    assert (servers, proxies) == (origin, f"{node},{site}")
    assert token == described["run_control_token"] and len(token) >= 24
    for url in (origin, site, node):
        assert httpx.get(f"{url}/_outpost/healthz").status_code == 200


def test_the_exported_token_is_the_one_flush_needs(
    up_with_env_file: tuple[dict[str, Any], Path], tmp_path: Path
) -> None:
    described, env_file = up_with_env_file
    without = in_shell(f"outpost flush --run 7 --proxy {described['site']}", tmp_path)
    assert without.returncode == 1, without.stdout
    flushed = in_shell(f'. {env_file} && outpost flush --run 7 --proxy "$SITE" --json', tmp_path)
    assert flushed.returncode == 0, flushed.stdout + flushed.stderr
    assert orjson.loads(flushed.stdout)["acked"] == 2
    got = in_shell(
        f'. {env_file} && outpost get "$NODE/v1/resolve/OUTPOST_HLT_2026_V1?run=500" --json',
        tmp_path,
    )
    assert got.returncode == 0, got.stderr
    assert orjson.loads(got.stdout)["status"] == 200


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=["kill", "hangup"])
def test_the_env_file_goes_when_up_stops(
    up_with_env_file: tuple[dict[str, Any], Path], signum: int
) -> None:
    """`kill %1`, or the terminal closing: every tier stops, and the file that named them."""
    described, env_file = up_with_env_file
    assert env_file.exists()
    assert stop_up(described["process"], signum) == 0
    assert not env_file.exists()
    for url in (described["origin"], described["site"], *described["nodes"]):
        with pytest.raises(httpx.TransportError):
            httpx.get(f"{url}/_outpost/healthz", timeout=1)


def test_ports_put_each_tier_on_its_port(database: str) -> None:
    ports = [free_port() for _ in range(3)]
    process, described = start_up(
        "--nodes", "1", "--db", database, "--ports", ",".join(map(str, ports))
    )
    try:
        urls = [described["origin"], described["site"], *described["nodes"]]
        assert urls == [f"http://127.0.0.1:{port}" for port in ports]
        names = [httpx.get(f"{url}/_outpost/healthz").json().get("name") for url in urls[1:]]
        assert names == ["site", "node-1"]
    finally:
        assert stop_up(process) == 0


def test_a_port_in_use_is_one_line_and_starts_nothing(database: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        origin_port, node_port = free_port(), free_port()
        ports = f"{origin_port},{busy},{node_port}"
        answer = subprocess.run(
            outpost_command("up", "--nodes", "1", "--db", database, "--ports", ports),
            capture_output=True,
            text=True,
            env=clean_environment(),
            timeout=60,
        )
    assert answer.returncode == 1
    assert answer.stderr.splitlines() == [f"outpost: port {busy} (for site) is in use on 127.0.0.1"]
    assert answer.stdout == ""
    with pytest.raises(httpx.TransportError):  # the origin was never started
        httpx.get(f"http://127.0.0.1:{origin_port}/_outpost/healthz", timeout=1)


def test_ports_of_the_wrong_number_are_a_usage_error(database: str) -> None:
    answer = subprocess.run(
        outpost_command("up", "--nodes", "2", "--db", database, "--ports", "18080,18081,18082"),
        capture_output=True,
        text=True,
        env=clean_environment(),
        timeout=60,
    )
    assert answer.returncode == 2
    assert answer.stderr.splitlines() == [
        "outpost: --ports needs 4 ports, in this order: origin, site, node-1, node-2; 3 given"
    ]
