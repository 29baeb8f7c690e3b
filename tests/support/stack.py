"""A conditions-delivery tree of real processes on loopback: origin, proxies, Redis.

`Stack` starts each piece as `python -m outpost …` (the same command operators run), waits
until it answers, and stops everything at the end; `kill(name)` takes one piece down hard.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from proxy.core.signing import generate_keypair
from support.servers import free_port, outpost_command, run_process

__all__ = [
    "REGISTER_TOKEN",
    "RUN_CONTROL_TOKEN",
    "SHARED_TIER_KEY",
    "TREE_KEYS",
    "Server",
    "Stack",
    "tree_credentials",
]

RUN_CONTROL_TOKEN = "test-run-control-token"
REGISTER_TOKEN = "test-register-token"
SHARED_TIER_KEY = "test-shared-tier-key-0123456789"
TREE_KEYS = generate_keypair()  # (signing, public), one per test session


def tree_credentials(*, signing: bool = True) -> dict[str, str]:
    """The environment of a proxy of the test tree: every credential, or (`signing=False`) a
    leaf's: the registration token and the tree's public key only."""
    if not signing:
        return {
            "OUTPOST_PROXY_REGISTER_TOKEN": REGISTER_TOKEN,
            "OUTPOST_PROXY_TREE_PUBLIC_KEY": TREE_KEYS[1],
        }
    return {
        "OUTPOST_RUN_CONTROL_TOKEN": RUN_CONTROL_TOKEN,
        "OUTPOST_PROXY_REGISTER_TOKEN": REGISTER_TOKEN,
        "OUTPOST_PROXY_TREE_SIGNING_KEY": TREE_KEYS[0],
        "OUTPOST_PROXY_SHARED_TIER_KEY": SHARED_TIER_KEY,
    }


@dataclass
class Server:
    name: str
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(10)

    def metric(self, name: str, **labels: str) -> float:
        """A counter's value from this server's /_outpost/metrics (0 if never incremented)."""
        text = httpx.get(f"{self.url}/_outpost/metrics", timeout=5).text
        wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        for line in text.splitlines():
            if line.startswith("#"):
                continue
            metric, _, value = line.rpartition(" ")
            if metric == (f"{name}{{{wanted}}}" if wanted else name):
                return float(value)
        return 0.0


@dataclass
class Stack:
    root: Path
    stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)
    servers: dict[str, Server] = field(default_factory=dict)

    def slow_origin(self) -> str:
        """`tests/support/slow_origin.py` (a slow, careless upstream) on a free port; its URL."""
        return self.support_app("slow_origin")

    def support_app(self, module: str, name: str | None = None) -> str:
        """The ASGI `app` of `tests/support/<module>.py` under uvicorn on a free port; its URL
        (it must answer `/healthz`)."""
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        app_dir = str(Path(__file__).parent)
        command = [sys.executable, "-m", "uvicorn", "--app-dir", app_dir, f"{module}:app"]
        command += ["--port", str(port), "--log-level", "warning"]
        log = self.root / f"{name or module}.log"
        self.stack.enter_context(run_process(command, log, f"{url}/healthz"))
        return url

    def origin(
        self,
        db: str,
        name: str = "origin",
        env: dict[str, str] | None = None,
        port: int | None = None,
    ) -> Server:
        port = port or free_port()
        command = outpost_command(
            "origin", "--db", db, "--port", str(port), "--log-level", "warning"
        )
        return self._start(name, port, command, env or {})

    def proxy(
        self,
        name: str,
        upstreams: list[str],
        *,
        parent: str | None = None,
        redis: str | None = None,
        extra: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
        port: int | None = None,
        prefix: tuple[str, ...] = (),
    ) -> Server:
        """`prefix` goes before the command (e.g. `prlimit --nofile=…`)."""
        port = port or free_port()
        command = [*prefix, *outpost_command("proxy", "--name", name, "--port", str(port))]
        for upstream in upstreams:
            command += ["--upstream", upstream]
        if parent:
            command += ["--parent", parent]
        if redis:
            command += ["--redis", redis]
        variables = {**tree_credentials(), **(env or {})}
        return self._start(name, port, [*command, *extra], variables)

    def _start(self, name: str, port: int, command: list[str], env: dict[str, str]) -> Server:
        import os

        url = f"http://127.0.0.1:{port}"
        log = self.root / f"{name}.log"
        process = self.stack.enter_context(
            run_process(
                command, log, ready_url=f"{url}/_outpost/healthz", env={**os.environ, **env}
            )
        )
        server = Server(name, url, process, log)
        self.servers[name] = server
        return server

    def close(self) -> None:
        self.stack.close()

    def __getitem__(self, name: str) -> Server:
        return self.servers[name]


@contextlib.contextmanager
def running_stack(root: Path) -> Iterator[Stack]:
    stack = Stack(root)
    try:
        yield stack
    finally:
        stack.close()
