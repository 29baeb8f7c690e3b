"""End to end: `outpost origin` as a real uvicorn server on loopback, spoken to over HTTP."""

from __future__ import annotations

import contextlib
import hashlib
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
from support.fnkit import frontier_url
from support.servers import free_port, outpost_command, run_process
from support.stack import Stack

from origin.sample import HLT_GLOBAL_TAG


@contextlib.contextmanager
def serving_origin(db: str, log: Path, *options: str) -> Iterator[httpx.Client]:
    """`outpost origin` on a free loopback port, and an HTTP client pointed at it."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    command = outpost_command("origin", "--db", db, "--port", str(port), "--log-level", "warning")
    with (
        run_process([*command, *options], log, ready_url=f"{base}/_outpost/healthz"),
        httpx.Client(base_url=base, timeout=10) as http,
    ):
        yield http


def test_a_farm_node_gets_the_resolve_answer_and_every_payload_intact(
    sample_db: str, tmp_path: Path
) -> None:
    with serving_origin(sample_db, tmp_path / "origin.log") as http:
        resolve = http.get(f"/v1/resolve/{HLT_GLOBAL_TAG}", params={"run": 500})
        assert resolve.status_code == 200
        records = resolve.json()["records"]
        assert len(records) >= 20
        for record in records:
            payload = http.get(f"/v1/payloads/{record['payload']}")
            assert payload.status_code == 200
            assert hashlib.sha256(payload.content).hexdigest() == record["payload"]
            assert payload.headers["content-length"] == str(record["size"])


def test_origin_with_sample_flag_creates_and_serves_the_sample(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path}/fresh.sqlite"
    with serving_origin(db, tmp_path / "origin.log", "--sample") as http:
        names = [gt["name"] for gt in http.get("/v1/globaltags").json()["globaltags"]]
    assert HLT_GLOBAL_TAG in names


def test_two_worker_processes_serve_the_same_answers(sample_db: str, tmp_path: Path) -> None:
    with serving_origin(sample_db, tmp_path / "origin.log", "--workers", "2") as http:
        answers = {http.get(f"/v1/resolve/{HLT_GLOBAL_TAG}?run=7").content for _ in range(8)}
    assert len(answers) == 1


def start_origin_and_wait(db: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """`outpost origin` over `db`, expected to stop by itself; its exit status and output."""
    command = outpost_command("origin", "--db", db, "--port", str(free_port()))
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)


def test_origin_over_a_corrupt_sqlite_file_exits_1_with_one_line(tmp_path: Path) -> None:
    path = tmp_path / "conditions.sqlite"
    path.write_bytes(b"this is not a database\n" * 1000)
    done = start_origin_and_wait(f"sqlite:///{path}")
    assert done.returncode == 1
    assert done.stderr.strip() == f"outpost: database sqlite:///{path}: file is not a database"
    assert "Traceback" not in done.stdout + done.stderr


def test_origin_in_a_missing_directory_exits_1_with_one_line(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'gone' / 'conditions.sqlite'}"
    done = start_origin_and_wait(url)
    assert done.returncode == 1
    assert done.stderr.strip() == f"outpost: database {url}: unable to open database file"
    assert "Traceback" not in done.stdout + done.stderr


def _children(pid: int) -> set[int]:
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                found.add(int(stat.parent.name))
    return found


def test_a_killed_origin_leaves_no_sql_checking_process_behind(
    stack: Stack, sample_sqlite: str
) -> None:
    """Frontier SQL is parsed in worker processes; an origin killed outright (SIGKILL, the OOM
    killer) cannot stop them, so they end themselves when they see it gone."""
    origin = stack.origin(sample_sqlite)
    answer = httpx.get(origin.url + frontier_url("SELECT count(*) FROM tags"), timeout=30)
    assert answer.status_code == 200
    workers = _children(origin.process.pid)
    assert workers, "the Frontier SQL checker runs in processes of the origin's own"
    origin.kill()
    deadline = time.monotonic() + 10
    while any(Path(f"/proc/{pid}").exists() for pid in workers):
        assert time.monotonic() < deadline, f"workers {workers} outlived their origin"
        time.sleep(0.2)
