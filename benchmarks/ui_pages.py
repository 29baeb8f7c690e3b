"""How long the web interface's pages take on the sample data set, made by the origin each time.

Set-up, in a temporary directory: `outpost origin` over the sample database (`outpost db
sample`), and a site `outpost proxy` in front of it with `--children` (200) registered children,
each with a heartbeat's figures. Every page of the conditions browser is asked of the origin
directly (so it is made every time, never a cache hit) `--requests` times (30) on one keep-alive
connection, after 3 untimed requests; the dashboard of the site likewise. The figure per page is
the median and the slowest time from sending the request to the last byte of the answer.

The goal (issue 19): every page under 100 ms on the sample data set.

Exit status: 0 when every page answered 200 under the goal at its median; 1 otherwise; 2 when
it could not run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from flush_fanout import REGISTER, register_children, wait_answering
from harness import HOST, free_port, outpost_command
from hit_throughput import Server, start_server, stop_server
from wrk import BenchmarkError

GOAL_MS = 100.0
HLT, PROMPT = "OUTPOST_HLT_2026_V1", "OUTPOST_PROMPT_2025_V3"  # origin.sample's global tags


def pages(origin: str) -> dict[str, str]:
    """The browser's pages, with real names from the sample data set."""
    gt_map = httpx.get(f"{origin}/v1/globaltags/{HLT}").json()["map"]
    tag = max(
        (e["tag"] for e in gt_map),
        key=lambda t: len(httpx.get(f"{origin}/v1/tags/{t}/history").content),
    )
    records = httpx.get(f"{origin}/v1/resolve/{HLT}?run=500").json()["records"]
    payload = next(r["payload"] for r in records if r["payload"])
    return {
        "global tags": "/ui/",
        "global tag": f"/ui/globaltags/{HLT}",
        "diff": f"/ui/diff?a={HLT}&b={PROMPT}",
        "tag search": "/ui/tags?name=Ecal*",
        "tag (timeline)": f"/ui/tags/{tag}",
        "run conditions": f"/ui/resolve/{HLT}?run=500",
        "payload": f"/ui/payloads/{payload}",
        "runs": "/ui/runs",
    }


def timed(client: httpx.Client, url: str, requests: int) -> list[float]:
    for _ in range(3):
        client.get(url)
    seconds = []
    for _ in range(requests):
        started = time.perf_counter()
        answer = client.get(url)
        seconds.append(time.perf_counter() - started)
        if answer.status_code != 200:
            raise BenchmarkError(f"{url} answered {answer.status_code}: {answer.text[:300]}")
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=30, help="timed requests per page (30)")
    parser.add_argument("--children", type=int, default=200, help="children of the site (200)")
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    args = parser.parse_args()
    servers: list[Server] = []
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="outpost-ui-pages-") as tmp:
        work = Path(tmp)
        try:
            ports = [free_port() for _ in range(2)]
            origin_url, site_url = f"http://{HOST}:{ports[0]}", f"http://{HOST}:{ports[1]}"
            db = f"sqlite:///{work / 'outpost.sqlite'}"
            subprocess.run([*outpost_command(), "db", "sample", "--db", db], check=True)
            origin = [*outpost_command(), "origin", "--db", db, "--host", HOST]
            origin += ["--port", str(ports[0])]
            servers.append(start_server("origin", origin, ports[0], work / "origin.log", None))
            wait_answering(origin_url + "/_outpost/healthz", servers[-1])
            config = work / "site.toml"
            config.write_text(f'[proxy]\nregister_token = "{REGISTER}"\n')
            site = [*outpost_command(), "proxy", "--config", str(config), "--name", "site"]
            site += ["--host", HOST, "--upstream", origin_url, "--port", str(ports[1])]
            servers.append(start_server("site", site, ports[1], work / "site.log", None))
            wait_answering(site_url + "/_outpost/healthz", servers[-1])
            register_children(site_url, f"http://{HOST}:9", args.children, figures=True)

            targets = {name: origin_url + path for name, path in pages(origin_url).items()}
            targets["dashboard (site)"] = f"{site_url}/_outpost/ui/"
            with httpx.Client(timeout=30) as client:
                for name, url in targets.items():
                    seconds = timed(client, url, args.requests)
                    results[name] = {
                        "median_ms": statistics.median(seconds) * 1000,
                        "max_ms": max(seconds) * 1000,
                        "bytes": len(client.get(url).content),
                    }
                    print(f"{name}: {results[name]['median_ms']:.1f} ms", file=sys.stderr)
        except (BenchmarkError, subprocess.CalledProcessError, httpx.HTTPError) as exc:
            print(f"ui_pages: {exc}", file=sys.stderr)
            return 2
        finally:
            for server in reversed(servers):
                stop_server(server)
    slow = [name for name, r in results.items() if r["median_ms"] >= GOAL_MS]
    if args.json:
        print(json.dumps({"goal_ms": GOAL_MS, "pages": results, "over_goal": slow}))
    else:
        print(f"{'page':<20} {'median ms':>10} {'slowest ms':>11} {'bytes':>9}")
        for name, r in results.items():
            print(f"{name:<20} {r['median_ms']:>10.1f} {r['max_ms']:>11.1f} {r['bytes']:>9}")
        verdict = "met" if not slow else "not met: " + ", ".join(slow)
        print(f"goal: every page under {GOAL_MS:.0f} ms at its median: {verdict}")
    return 1 if slow else 0


if __name__ == "__main__":
    raise SystemExit(main())
