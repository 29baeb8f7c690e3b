"""The pip extras install what each role needs and nothing the role does not use.

A wheel of the working tree goes into clean virtualenvs the way an operator installs it (no
pip inside: the test's pip installs with `--python`). The base venv must run the client and the
CLI and answer a server command with one line naming its extra; the `[proxy]` venv must serve
as a node proxy without the origin's, the load test's or granian's packages; the `[origin]` venv
must create a database without the proxy's. Each venv's size is printed (`pytest -s`).
Needs PyPI, or pip's cache, for the dependencies.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
import tomllib
from collections.abc import Sequence
from pathlib import Path

import httpx
import pytest

from outpost import extras
from outpost.cli import _parser
from outpost.localstack import free_port

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("pyproject.toml", "README.md", "outpost", "origin", "proxy", "loadtest")
# Top-level modules of each role's own dependencies, none of which another role may pull in.
ORIGIN_ONLY = ("sqlalchemy", "alembic", "psycopg", "sqlglot")
PROXY_ONLY = ("aiohttp", "cachetools", "redis")
LOADTEST_ONLY = ("locust", "gevent", "matplotlib", "numpy")
SERVERS_ONLY = ("starlette", "uvicorn", "prometheus_client")


def _clean_env() -> dict[str, str]:
    """The environment without anything that would put this checkout or its settings in reach."""
    dropped = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")
    return {
        k: v for k, v in os.environ.items() if k not in dropped and not k.startswith("OUTPOST_")
    }


def _run(argv: Sequence[str | Path], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in argv],
        cwd=cwd,
        env=_clean_env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _size(path: Path) -> int:
    """Bytes of the files under `path` (symlinks not followed)."""
    total = 0
    for directory, _, files in os.walk(path):
        for name in files:
            entry = Path(directory, name)
            if not entry.is_symlink():
                total += entry.stat().st_size
    return total


class Venv:
    def __init__(self, root: Path, wheel: Path, extra: str) -> None:
        self.root = root
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", root], check=True)
        target = f"{wheel}[{extra}]" if extra else str(wheel)
        pip: list[str | Path] = [sys.executable, "-m", "pip", "--python", self.python]
        done = _run([*pip, "install", "--quiet", target], root)
        assert done.returncode == 0, done.stderr
        print(f"\n{extra or 'base'} venv: {_size(root) / 1e6:.1f} MB (without pip)")

    @property
    def python(self) -> Path:
        return self.root / "bin" / "python"

    def outpost(self, *args: str) -> subprocess.CompletedProcess[str]:
        return _run([self.root / "bin" / "outpost", *args], self.root)

    def present(self, modules: Sequence[str]) -> list[str]:
        """Which of `modules` this venv can import (`-I`: not from the checkout)."""
        code = "import sys, importlib.util as u; print(*filter(u.find_spec, sys.argv[1:]))"
        done = _run([self.python, "-I", "-c", code, *modules], self.root)
        assert done.returncode == 0, done.stderr
        return done.stdout.split()


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel of the working tree, built from a copy so the checkout gets no build files."""
    work = tmp_path_factory.mktemp("wheel")
    source = work / "source"
    source.mkdir()
    for name in SOURCES:
        if (ROOT / name).is_dir():
            ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
            shutil.copytree(ROOT / name, source / name, ignore=ignore)
        else:
            shutil.copy2(ROOT / name, source / name)
    build: list[str | Path] = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps"]
    done = _run([*build, "-w", work, source], work)
    assert done.returncode == 0, done.stderr
    (found,) = work.glob("outpost-*.whl")
    return found


def _one_line_naming(done: subprocess.CompletedProcess[str], pip_target: str) -> None:
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith("outpost: ")
    assert f"pip install '{pip_target}'" in done.stderr


def test_base_install_is_the_client_and_cli_and_names_the_extra_a_server_needs(
    wheel: Path, tmp_path: Path
) -> None:
    venv = Venv(tmp_path / "base", wheel, "")
    assert venv.present([*ORIGIN_ONLY, *PROXY_ONLY, *LOADTEST_ONLY, *SERVERS_ONLY, "granian"]) == []
    for args in (["--help"], ["get", "--help"], ["proxy", "--help"], ["loadtest", "--help"]):
        done = venv.outpost(*args)
        assert done.returncode == 0, (args, done.stderr)
    keys = venv.outpost("tree-keys")  # an operator's command: Ed25519 is in the base
    assert keys.returncode == 0, keys.stderr
    assert "OUTPOST_PROXY_TREE_SIGNING_KEY=" in keys.stdout
    client = _run([venv.python, "-I", "-c", "import outpost.client"], tmp_path)
    assert client.returncode == 0, client.stderr

    _one_line_naming(venv.outpost("proxy", "--upstream", "http://127.0.0.1:9"), "outpost[proxy]")
    _one_line_naming(venv.outpost("db", "init"), "outpost[origin]")
    loadtest = "outpost[origin,proxy,loadtest]"
    _one_line_naming(venv.outpost("loadtest", "--runs", "1"), loadtest)


def test_proxy_extra_serves_a_node_proxy_without_the_other_roles(
    wheel: Path, tmp_path: Path
) -> None:
    venv = Venv(tmp_path / "proxy", wheel, "proxy")
    assert venv.present([*ORIGIN_ONLY, *LOADTEST_ONLY, "granian"]) == []
    assert venv.outpost("proxy", "--help").returncode == 0
    imported = _run([venv.python, "-I", "-c", "import proxy.app"], tmp_path)
    assert imported.returncode == 0, imported.stderr

    port = free_port()
    argv = ["proxy", "--upstream", "http://127.0.0.1:9", "--port", str(port)]
    server = subprocess.Popen(
        [venv.root / "bin" / "outpost", *argv],
        cwd=tmp_path,
        env=_clean_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        answer = _wait_for(f"http://127.0.0.1:{port}/_outpost/healthz", server)
        assert answer.status_code == 200
        assert answer.json()["status"] == "ok"
    finally:
        server.terminate()
        server.communicate(timeout=10)  # reaps it and closes its pipe

    _one_line_naming(venv.outpost("proxy", "--server", "granian"), "outpost[granian]")
    _one_line_naming(venv.outpost("up"), "outpost[origin]")


def test_origin_extra_creates_a_database_without_the_proxy(wheel: Path, tmp_path: Path) -> None:
    venv = Venv(tmp_path / "origin", wheel, "origin")
    assert venv.present([*PROXY_ONLY, *LOADTEST_ONLY, "granian"]) == []
    database = tmp_path / "conditions.sqlite"
    done = venv.outpost("db", "sample", "--db", f"sqlite:///{database}")
    assert done.returncode == 0, done.stderr
    assert database.stat().st_size > 0
    _one_line_naming(venv.outpost("proxy"), "outpost[proxy]")


def _wait_for(url: str, server: subprocess.Popen[str], timeout: float = 30.0) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while True:
        if server.poll() is not None:
            raise AssertionError(f"outpost proxy exited: {server.communicate()[1]}")
        try:
            return httpx.get(url, timeout=2.0)
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_the_extras_table_names_real_commands_extras_and_modules() -> None:
    """Every command it names exists, its extras are pyproject's, and with every extra installed
    (as in this suite's venv) no command misses a module: a misspelt one would."""
    (commands,) = [a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction)]
    subcommands = set(commands.choices)
    assert set(extras.COMMANDS) <= set(subcommands)
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert set(extras.EXTRAS) == set(declared["optional-dependencies"]) - {"test"}
    assert {c: extras.missing(c, server="granian") for c in subcommands} == {
        c: [] for c in subcommands
    }
