"""The copy rate of `outpost sync`: the sample data set from an origin, through a proxy, into a
fresh SQLite database, as payloads/s and MiB/s.

    python benchmarks/sync_copy.py [--runs 3]

Starts an origin over the sample data set (SQLite) and one `outpost proxy` in front of it on
loopback, then runs `outpost sync --json` for both sample global tags into a new SQLite file,
`--runs` times: the first through a cold proxy (every answer from the origin), the others
through the warm one (payloads and pinned IOV answers are hits). Each run's figures come from
the command's own report (its wall time includes reading the source, checking every payload
against its hash and writing the target in one transaction); the process start-up is not
counted.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import httpx
import orjson
from harness import HOST, clean_environment, free_port, outpost_command, tail
from wrk import BenchmarkError

GLOBAL_TAGS = ("OUTPOST_HLT_2026_V1", "OUTPOST_PROMPT_2025_V3")
MIB = 1024 * 1024


def start(command: list[str], log: Path, health: str) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, env=clean_environment()
        )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(health, timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        if process.poll() is not None:
            break
        time.sleep(0.1)
    process.kill()
    raise BenchmarkError(f"{command[1]} did not start:\n{tail(log)}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=3, help="copies (the first cold)")
    args = parser.parse_args(argv)
    outpost = outpost_command()
    with tempfile.TemporaryDirectory(prefix="outpost-sync-bench-") as work:
        root = Path(work)
        source = f"sqlite:///{root / 'source.sqlite'}"
        subprocess.run([*outpost, "db", "sample", "--db", source], check=True, capture_output=True)
        origin_port, proxy_port = free_port(), free_port()
        origin_url, proxy_url = f"http://{HOST}:{origin_port}", f"http://{HOST}:{proxy_port}"
        processes = [
            start(
                [
                    *outpost,
                    "origin",
                    "--db",
                    source,
                    "--port",
                    str(origin_port),
                    "--log-level",
                    "warning",
                ],
                root / "origin.log",
                f"{origin_url}/_outpost/healthz",
            )
        ]
        try:
            processes.append(
                start(
                    [
                        *outpost,
                        "proxy",
                        "--name",
                        "bench",
                        "--port",
                        str(proxy_port),
                        "--upstream",
                        origin_url,
                    ],
                    root / "proxy.log",
                    f"{proxy_url}/_outpost/healthz",
                )
            )
            print(f"outpost sync of the sample data set, {HOST} origin → proxy → fresh SQLite")
            columns = ("run", "proxy", "payloads", "MiB", "requests", "seconds", "payloads/s")
            print(" ".join(f"{c:>10}" for c in (*columns, "MiB/s")))
            for run in range(args.runs):
                target = f"sqlite:///{root / f'replica-{run}.sqlite'}"
                command = [*outpost, "sync", "--from", proxy_url, "--to", target, "--json"]
                for gt in GLOBAL_TAGS:
                    command += ["--globaltag", gt]
                done = subprocess.run(
                    command, capture_output=True, env=clean_environment(), timeout=600
                )
                if done.returncode != 0:
                    raise BenchmarkError(
                        f"sync failed: {done.stdout.decode()} {done.stderr.decode()}"
                    )
                report = orjson.loads(done.stdout)
                count, size, seconds = (
                    report["payloads"],
                    report["payload_bytes"],
                    report["seconds"],
                )
                cells = (
                    str(run + 1),
                    "cold" if run == 0 else "warm",
                    str(count),
                    f"{size / MIB:.1f}",
                    str(report["requests"]),
                    f"{seconds:.2f}",
                    f"{count / seconds:.0f}",
                    f"{size / MIB / seconds:.1f}",
                )
                print(" ".join(f"{c:>10}" for c in cells))
        finally:
            for process in processes:
                process.terminate()
                process.wait(10)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchmarkError as exc:
        print(f"sync_copy: {exc}", file=sys.stderr)
        sys.exit(1)
