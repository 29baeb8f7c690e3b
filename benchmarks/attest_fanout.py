"""Run preparation at farm scale: `outpost prepare` (flush, warm, attest, record) against one
proxy with 2000 registered children, the attestation's own time, and its bytes per cache.

Set-up, in a temporary directory: `outpost origin` over the sample database (`outpost db
sample`), with run control's token in its tokens file; a site `outpost proxy` with the
run-control token and the tree's signing key; nginx standing in for `--children` (2000) child
proxies at `http://127.0.0.1:PORT/node-NNNN`, as in `flush_fanout.py`: it acknowledges every
flush and warm and answers every attest as one cache holding the run's conditions. The children
are separate machines, so their own work should cost this machine as little as possible; the
site's work (its own state, 2000 signed requests, 2000 answers counted) is all measured.

Per run (`--runs`, 3): `outpost prepare … --json` timed from start to exit (a fresh process,
as run control runs it); then `POST /_outpost/attest` alone, timed to its answer. Bytes on the
wire per cache: request and response sizes of the attest requests, from nginx's log
(`$request_length`, `$bytes_sent`: headers and body). The goal (issue 22): a complete
attestation of 2000 children in under 2 s.

Exit status: 0 when every prepare reported every cache agreeing and the run recorded; 1
otherwise; 2 when it could not run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from flush_fanout import REGISTER, TOKEN, nginx_children, register_children, wait_answering
from harness import HOST, clean_environment, free_port, outpost_command
from hit_throughput import Server, start_server, stop_server
from wrk import BenchmarkError

from loadtest.peers import PeerMissing
from outpost.conditions import conditions_digest
from proxy.core.signing import generate_keypair

RUN = 500
HLT_GLOBAL_TAG = "OUTPOST_HLT_2026_V1"  # origin.sample's (benchmarks/origin.py hides the package)


def attest_location(digest: str) -> str:
    """nginx answering an attest as one cache that holds `digest`."""
    answer = (
        f'{{"name": "node", "run": {RUN}, "expected": "{digest}", "answered": 1, "agree": 1, '
        f'"digests": {{"{digest}": 1}}, "differ": [], "failed": []}}'
    )
    return f"""location ~ /_outpost/attest$ {{
            default_type application/json;
            return 200 '{answer}';
        }}"""


def wire_bytes(log: Path) -> tuple[float, float]:
    """Median request and response bytes of the attest requests nginx logged."""
    sent, received = [], []
    for line in log.read_text().splitlines():
        uri, request_length, bytes_sent = line.split()
        if uri.endswith("/_outpost/attest"):
            received.append(int(request_length))
            sent.append(int(bytes_sent))
    if not sent:
        raise BenchmarkError("nginx logged no attest request")
    return statistics.median(received), statistics.median(sent)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--children", type=int, default=2000, help="registered children (2000)")
    parser.add_argument("--runs", type=int, default=3, help="prepares to time (3)")
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    args = parser.parse_args()
    signing, _ = generate_keypair()
    os.environ.clear()
    os.environ.update(clean_environment())
    servers: list[Server] = []
    prepare_seconds: list[float] = []
    attest_seconds: list[float] = []
    with tempfile.TemporaryDirectory(prefix="outpost-attest-fanout-") as tmp:
        work = Path(tmp)
        try:
            ports = [free_port() for _ in range(3)]
            origin_url, site_url = f"http://{HOST}:{ports[0]}", f"http://{HOST}:{ports[1]}"
            db = f"sqlite:///{work / 'outpost.sqlite'}"
            subprocess.run([*outpost_command(), "db", "sample", "--db", db], check=True)
            tokens = work / "tokens.toml"
            tokens.write_text(
                f'[[token]]\nname = "run-control"\nrole = "runcontrol"\ntoken = "{TOKEN}"\n'
            )
            origin = [*outpost_command(), "origin", "--db", db, "--host", HOST]
            origin += ["--port", str(ports[0]), "--tokens-file", str(tokens)]
            servers.append(start_server("origin", origin, ports[0], work / "origin.log", None))
            wait_answering(origin_url + "/_outpost/healthz", servers[-1])
            resolve = f"{origin_url}/v1/resolve/{HLT_GLOBAL_TAG}?run={RUN}"
            digest = conditions_digest(httpx.get(resolve).json()["records"])

            config = work / "site.toml"
            config.write_text(
                f'[proxy]\nrun_control_token = "{TOKEN}"\nregister_token = "{REGISTER}"\n'
                f'tree_signing_key = "{signing}"\n'
            )
            site = [*outpost_command(), "proxy", "--config", str(config), "--name", "site"]
            site += ["--host", HOST, "--upstream", origin_url, "--port", str(ports[1])]
            wire_log = work / "nginx" / "wire.log"
            children = nginx_children(
                work / "nginx", ports[2], attest_location(digest), f"{wire_log} wire"
            )
            for name, command, port in (
                ("site", site, ports[1]),
                ("children", children, ports[2]),
            ):
                server = start_server(name, command, port, work / f"{name}.log", None)
                servers.append(server)
                probe = "/healthz" if name == "children" else "/_outpost/healthz"
                wait_answering(server.base + probe, server)
            children_url = servers[-1].base
            register_children(site_url, children_url, args.children)

            caches = args.children + 1
            command = [*outpost_command(), "prepare", "--run", str(RUN), "--globaltag"]
            command += [HLT_GLOBAL_TAG, "--proxy", site_url, "--server", origin_url, "--json"]
            environment = {**os.environ, "OUTPOST_RUN_CONTROL_TOKEN": TOKEN}
            for run in range(1, args.runs + 1):
                started = time.perf_counter()
                done = subprocess.run(command, capture_output=True, text=True, env=environment)
                elapsed = time.perf_counter() - started
                report = json.loads(done.stdout or "{}")
                attestation = report.get("attestation", {})
                if done.returncode != 0 or attestation.get("agree") != caches:
                    shown = {k: v for k, v in report.items() if k not in ("flush", "warm")}
                    print(f"prepare {run}: exit {done.returncode}, {json.dumps(shown)[:2000]}")
                    print(done.stderr[-2000:], file=sys.stderr)
                    return 1
                prepare_seconds.append(elapsed)

                started = time.perf_counter()
                answer = httpx.post(
                    f"{site_url}/_outpost/attest",
                    json={"globaltag": HLT_GLOBAL_TAG, "run": RUN, "expected": digest},
                    headers={"authorization": f"Bearer {TOKEN}"},
                    timeout=120,
                )
                attest_seconds.append(time.perf_counter() - started)
                if answer.json().get("agree") != caches:
                    print(f"attest {run}: {answer.text[:500]}")
                    return 1
                print(
                    f"run {run}: prepare {elapsed * 1000:.0f} ms, "
                    f"attest {attest_seconds[-1] * 1000:.0f} ms",
                    file=sys.stderr,
                )
            request_bytes, response_bytes = wire_bytes(wire_log)
            answer_bytes = len(answer.content)
        except (BenchmarkError, PeerMissing, subprocess.CalledProcessError) as exc:
            print(f"attest_fanout: {exc}", file=sys.stderr)
            return 2
        finally:
            for server in reversed(servers):
                stop_server(server)
    result = {
        "children": args.children,
        "prepare_seconds": prepare_seconds,
        "attest_seconds": attest_seconds,
        "median_prepare_seconds": statistics.median(prepare_seconds),
        "median_attest_seconds": statistics.median(attest_seconds),
        "attest_request_bytes_per_cache": request_bytes,
        "attest_response_bytes_per_cache": response_bytes,
        "top_answer_bytes": answer_bytes,
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"{args.children} children (nginx stands in for them): outpost prepare (flush, warm, "
            f"attest, record) median {result['median_prepare_seconds'] * 1000:.0f} ms; "
            f"attestation alone median {result['median_attest_seconds'] * 1000:.0f} ms over "
            f"{args.runs} runs; per cache on the wire {request_bytes:.0f} B request, "
            f"{response_bytes:.0f} B answer; the top answer for {args.children + 1} caches "
            f"{answer_bytes} B"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
