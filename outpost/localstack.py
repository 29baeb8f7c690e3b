"""The whole hierarchy on one machine: an origin, a site proxy and N node proxies on loopback.

Each tier is the real `outpost` command in its own process group (what an operator runs), on a
free port (or the `ports` given), with the credentials its role gets in production: the site
proxy holds the run-control token, the tree signing key and the shared-tier key; node proxies
only the registration token and the tree's public key (docs/security.md, "Run control's
authority and secrets").
`LocalStack` waits until every one answers and stops them all (SIGTERM, then SIGKILL) when it is
closed; a tier that does not come up is a `StartFailed` whose `summary` is one line.
`outpost up`, `outpost demo` and the load tests are built on it.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from proxy.core.signing import generate_keypair

__all__ = ["LocalStack", "StartFailed", "Tier", "free_port", "port_in_use"]

DEFAULT_DB_NAME = "outpost.sqlite"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_in_use(port: int) -> bool:
    """Whether a server on 127.0.0.1 could not listen on `port` (SO_REUSEADDR, as the tiers'
    servers bind: a port left in TIME_WAIT is free, one with a listener is not)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


class StartFailed(RuntimeError):
    """A tier that did not come up: `summary` in one line, the log's tail after it."""

    def __init__(self, summary: str, detail: str = "") -> None:
        super().__init__(f"{summary}\n{detail}" if detail else summary)
        self.summary = summary


@dataclass
class Tier:
    name: str
    role: str  # origin | site | node
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def as_dict(self) -> dict[str, str | int]:
        return {"name": self.name, "role": self.role, "url": self.url, "pid": self.process.pid}


@dataclass
class LocalStack:
    """Start with `start()` (or use as a context manager); `tiers` in start order."""

    nodes: int = 4
    proxies: bool = True  # False: the origin alone (peers such as squid go in front of it)
    db: str | None = None
    redis: str | None = None
    server: str = "uvicorn"
    ports: list[int] | None = None  # fixed ports in start order (origin, site, nodes); else free
    token: str = field(
        default_factory=lambda: (
            os.environ.get("OUTPOST_RUN_CONTROL_TOKEN") or secrets.token_urlsafe(24)
        )
    )
    register_token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    tree_keys: tuple[str, str] = field(default_factory=generate_keypair)  # signing, public
    shared_tier_key: str = field(default_factory=lambda: secrets.token_hex(32))
    state: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="outpost-up-")))
    startup_timeout: float = 60.0
    tiers: list[Tier] = field(default_factory=list)

    @property
    def origin(self) -> Tier:
        return self.tiers[0]

    @property
    def site(self) -> Tier:
        return self.tiers[1]

    @property
    def node_proxies(self) -> list[Tier]:
        return [t for t in self.tiers if t.role == "node"]

    def tier_names(self) -> list[str]:
        """The tiers' names in start order (the order of `ports`)."""
        nodes = [f"node-{index}" for index in range(1, self.nodes + 1)]
        return ["origin", "site", *nodes] if self.proxies else ["origin"]

    def __enter__(self) -> LocalStack:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> None:
        self._check_ports()
        db = self.db or f"sqlite:///{Path.cwd() / DEFAULT_DB_NAME}"
        origin_args = ["origin", "--db", db, "--log-level", "warning"]
        if db.startswith("sqlite"):
            origin_args.append("--sample")  # the sample data set on first start
        origin = self._spawn("origin", "origin", origin_args)
        self._wait(origin)
        if not self.proxies:
            return
        site_args = ["proxy", "--name", "site", "--upstream", origin.url, "--server", self.server]
        if self.redis:
            site_args += ["--redis", self.redis]
        site = self._spawn("site", "site", site_args)
        self._wait(site)
        for index in range(1, self.nodes + 1):
            name = f"node-{index}"
            node_args = [
                "proxy",
                "--name",
                name,
                "--upstream",
                site.url,
                "--upstream",
                origin.url,
                "--parent",
                site.url,
                "--server",
                self.server,
            ]
            self._spawn(name, "node", node_args)
        for node in self.node_proxies:
            self._wait(node)
        self._wait_for_children()

    def _check_ports(self) -> None:
        """Fixed ports: one per tier, each free, before any tier starts."""
        if self.ports is None:
            return
        names = self.tier_names()
        if len(self.ports) != len(names):
            raise ValueError(
                f"{len(names)} ports needed ({', '.join(names)}), {len(self.ports)} given"
            )
        for name, port in zip(names, self.ports, strict=True):
            if port_in_use(port):
                raise StartFailed(f"port {port} (for {name}) is in use on 127.0.0.1")

    def _spawn(self, name: str, role: str, args: list[str]) -> Tier:
        port = self.ports[len(self.tiers)] if self.ports else free_port()
        url = f"http://127.0.0.1:{port}"
        log = self.state / f"{name}.log"
        env = {**os.environ, **self._credentials(role)}
        if role != "site":  # only the top of the tree takes commands from run control
            env.pop("OUTPOST_RUN_CONTROL_TOKEN", None)
        command = [
            sys.executable,
            "-m",
            "outpost",
            *args,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ]
        return self._start_process(name, role, command, url, log, env)

    def _credentials(self, role: str) -> dict[str, str]:
        """What a tier of `role` is given: no tier more than it needs."""
        if role == "site":
            return {
                "OUTPOST_RUN_CONTROL_TOKEN": self.token,
                "OUTPOST_PROXY_REGISTER_TOKEN": self.register_token,
                "OUTPOST_PROXY_TREE_SIGNING_KEY": self.tree_keys[0],
                "OUTPOST_PROXY_SHARED_TIER_KEY": self.shared_tier_key,
            }
        if role == "node":
            return {
                "OUTPOST_PROXY_REGISTER_TOKEN": self.register_token,
                "OUTPOST_PROXY_TREE_PUBLIC_KEY": self.tree_keys[1],
            }
        return {}

    def _start_process(
        self, name: str, role: str, command: list[str], url: str, log: Path, env: dict[str, str]
    ) -> Tier:
        with open(log, "wb") as out:
            process = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        tier = Tier(name, role, url, process, log)
        self.tiers.append(tier)
        return tier

    def add_peer(self, name: str, role: str, command: list[str], port: int) -> Tier:
        """Start another server (squid, nginx) listening on 127.0.0.1:`port`, stopped with the
        stack; returns once it answers any HTTP request."""
        url = f"http://127.0.0.1:{port}"
        tier = self._start_process(
            name, role, command, url, self.state / f"{name}.log", dict(os.environ)
        )
        self._wait(tier, probe="/")
        return tier

    def _wait(self, tier: Tier, probe: str | None = None) -> None:
        """Until `/_outpost/healthz` answers 200 (or `probe` answers at all)."""
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if tier.process.poll() is not None:
                tail = tier.log.read_text(errors="replace")[-2000:]
                summary = f"{tier.name} exited with {tier.process.returncode} (log: {tier.log})"
                raise StartFailed(summary, tail)
            try:
                answer = httpx.get(f"{tier.url}{probe or '/_outpost/healthz'}", timeout=1)
                if probe or answer.status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise StartFailed(
            f"{tier.name} did not answer at {tier.url} in {self.startup_timeout} s "
            f"(log: {tier.log})"
        )

    def _wait_for_children(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            status = httpx.get(f"{self.site.url}/_outpost/status", timeout=5).json()
            if len(status["children"]) >= self.nodes:
                return
            time.sleep(0.1)
        raise StartFailed("node proxies did not register with the site proxy")

    def stop(self) -> None:
        for tier in reversed(self.tiers):
            _signal(tier.process, signal.SIGTERM)
        deadline = time.monotonic() + 10
        for tier in reversed(self.tiers):
            try:
                tier.process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal(tier.process, signal.SIGKILL)
                tier.process.wait()
        self.tiers.clear()

    def describe(self) -> dict[str, Any]:
        """The tiers, their URLs and run control's token (what `outpost up --json` prints)."""
        return {
            "origin": self.origin.url,
            "site": self.site.url if self.proxies else None,
            "nodes": [t.url for t in self.node_proxies],
            "proxies": [t.as_dict() for t in self.tiers if t.role != "origin"],
            "run_control_token": self.token,
            "logs": str(self.state),
        }

    def environment(self) -> dict[str, str]:
        """What a shell beside the stack sets: the tiers' URLs (NODE is the first node proxy),
        what a farm node behind NODE sets (`Client.from_env`) and the token `outpost flush` and
        `outpost warm` read. Needs the proxies."""
        nodes = [t.url for t in self.node_proxies]
        proxies = [*nodes[:1], self.site.url]
        return {
            "ORIGIN": self.origin.url,
            "SITE": self.site.url,
            "NODE": proxies[0],
            "NODES": " ".join(nodes),
            "OUTPOST_PROXIES": ",".join(proxies),
            "OUTPOST_SERVERS": self.origin.url,
            "OUTPOST_RUN_CONTROL_TOKEN": self.token,
        }


def _signal(process: subprocess.Popen[bytes], signum: int) -> None:
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signum)
