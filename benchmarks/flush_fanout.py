"""Flush fan-out: how long one proxy takes to flush 2000 registered children and collect their
acknowledgements.

Set-up, in a temporary directory: `outpost origin` (SQLite, empty), a site `outpost proxy` with
the run-control token and the tree's signing key, and one server standing in for `--children`
(2000) child proxies at `http://127.0.0.1:PORT/node-NNNN`: nginx answering every
`…/_outpost/flush` with `{"acked": 1, "failed": []}` (`--stand-in nginx`, the default: the
children are separate machines, so their own work should cost this machine as little as
possible), or `tests/support/acker.py` under uvicorn (`--stand-in acker`). Every child is
registered with the site the way a node proxy registers (`POST /_outpost/register`).

Per run, run control's `POST /_outpost/flush` to the site, timed from sending it to its answer,
which comes once every child acknowledged (or failed): the figure is the median over `--runs`
(3). Every answer must report `acked` = children + 1 (the site itself) and no failure. The goal
of the real-time issue: under 2 s for 2000 children.

Exit status: 0 when every flush was acknowledged by every child; 1 otherwise; 2 when it could
not run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
from harness import HOST, clean_environment, free_port, outpost_command
from hit_throughput import Server, start_server, stop_server
from wrk import BenchmarkError

from loadtest.peers import PeerMissing, find_peer
from proxy.core.signing import generate_keypair

TOKEN = "bench-run-control-token"
REGISTER = "bench-register-token"
SUPPORT = Path(__file__).resolve().parents[1] / "tests" / "support"


def nginx_children(work: Path, port: int, extra: str = "", access_log: str = "off") -> list[str]:
    """nginx answering every child's flush and warm; `extra` adds directives to its server
    block (more locations), `access_log` replaces `off` (a log_format and a path)."""
    nginx = find_peer("nginx")
    (work / "temp").mkdir(parents=True)
    user = "user root root;\n" if os.geteuid() == 0 else ""
    conf = work / "nginx.conf"
    conf.write_text(
        f"""daemon off;
{user}worker_processes 1;
pid {work / "nginx.pid"};
error_log {work / "error.log"} warn;
events {{ worker_connections 8192; }}
http {{
    log_format wire '$request_uri $request_length $bytes_sent';
    access_log {access_log};
    client_body_temp_path {work}/temp;
    server {{
        listen {HOST}:{port} backlog=4096;
        location ~ /_outpost/(flush|warm)$ {{
            default_type application/json;
            return 200 '{{"acked": 1, "failed": []}}';
        }}
        {extra}
        location / {{ return 200 'ok'; }}
    }}
}}
"""
    )
    return [nginx, "-c", str(conf), "-p", str(work)]


def acker_children(port: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "uvicorn",
        "--app-dir",
        str(SUPPORT),
        "acker:app",
        "--port",
        str(port),
        "--log-level",
        "warning",
        "--backlog",
        "4096",
    ]


def register_children(site_url: str, children_url: str, count: int, figures: bool = False) -> None:
    """Register `count` children `node-NNNN` at `{children_url}/node-NNNN` with the site, as a
    node proxy's heartbeat does (`figures`: with made-up totals, as a busy node's)."""
    register = {"authorization": f"Bearer {REGISTER}"}
    with httpx.Client(base_url=site_url, headers=register, timeout=30) as client:
        for index in range(count):
            name = f"node-{index:04d}"
            body: dict[str, object] = {"name": name, "url": f"{children_url}/{name}"}
            if figures:
                body["figures"] = {"requests": 1000 * index, "hits": 900 * index, "epoch": 1}
            if client.post("/_outpost/register", json=body).status_code != 200:
                raise BenchmarkError(f"registering {name} failed")


def wait_answering(url: str, server: Server, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        server.check_alive()
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise BenchmarkError(f"{server.name} did not answer at {url}:\n{server.log_tail()}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--children", type=int, default=2000, help="registered children (2000)")
    parser.add_argument("--runs", type=int, default=3, help="flushes to time (3)")
    parser.add_argument("--stand-in", choices=("nginx", "acker"), default="nginx")
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    args = parser.parse_args()
    signing, _ = generate_keypair()
    os.environ.clear()
    os.environ.update(clean_environment())
    servers: list[Server] = []
    with tempfile.TemporaryDirectory(prefix="outpost-flush-fanout-") as tmp:
        work = Path(tmp)
        try:
            ports = [free_port() for _ in range(3)]
            db = f"sqlite:///{work / 'outpost.sqlite'}"
            origin = [*outpost_command(), "origin", "--db", db, "--host", HOST]
            config = work / "site.toml"
            config.write_text(
                f'[proxy]\nrun_control_token = "{TOKEN}"\nregister_token = "{REGISTER}"\n'
                f'tree_signing_key = "{signing}"\n'
            )
            site = [*outpost_command(), "proxy", "--config", str(config), "--name", "site"]
            site += ["--host", HOST]
            site += ["--upstream", f"http://{HOST}:{ports[0]}"]
            if args.stand_in == "nginx":
                children = nginx_children(work / "nginx", ports[2])
            else:
                children = acker_children(ports[2])
            for name, command, port in (
                ("origin", [*origin, "--port", str(ports[0])], ports[0]),
                ("site", [*site, "--port", str(ports[1])], ports[1]),
                ("children", children, ports[2]),
            ):
                server = start_server(name, command, port, work / f"{name}.log", None)
                servers.append(server)
                probe = "/healthz" if name == "children" else "/_outpost/healthz"
                wait_answering(server.base + probe, server)
            site_url, children_url = servers[1].base, servers[2].base
            register_children(site_url, children_url, args.children)
            seconds: list[float] = []
            for run in range(1, args.runs + 1):
                started = time.perf_counter()
                answer = httpx.post(
                    f"{site_url}/_outpost/flush",
                    json={"run": run},
                    headers={"authorization": f"Bearer {TOKEN}"},
                    timeout=120,
                )
                elapsed = time.perf_counter() - started
                document = answer.json()
                if document.get("acked") != args.children + 1 or document.get("failed"):
                    failed = document.get("failed", [])[:3]
                    print(f"flush {run}: acked {document.get('acked')}, failed {failed}")
                    return 1
                seconds.append(elapsed)
                print(f"flush {run}: {elapsed * 1000:.0f} ms", file=sys.stderr)
        except (BenchmarkError, PeerMissing) as exc:
            print(f"flush_fanout: {exc}", file=sys.stderr)
            return 2
        finally:
            for server in reversed(servers):
                stop_server(server)
    result = {
        "children": args.children,
        "stand_in": args.stand_in,
        "seconds": seconds,
        "median_seconds": statistics.median(seconds),
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"flush of {args.children} children ({args.stand_in} stands in for them): "
            f"median {result['median_seconds'] * 1000:.0f} ms over {args.runs} runs"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
