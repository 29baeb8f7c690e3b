"""The CLI never shows a traceback, and its exit status means what tools expect: 0 done, 1 could
not be done (unreachable, degraded, data refused), 2 usage, 141 the reader went away. Each case
here printed a traceback once. `outpost status` probes: a dead origin or child is found now, not
when the breaker next notices, and makes the exit status 1."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

import httpx
import orjson
import pytest
from support.cli import outpost
from support.stack import Server, Stack

from outpost.commands.output import DASH, iov_key
from outpost.localstack import free_port

GLOBAL_TAG = "OUTPOST_HLT_2026_V1"


def one_line_error(done: subprocess.CompletedProcess[str]) -> str:
    """The error a failed command printed: one line on stderr, no traceback anywhere."""
    assert "Traceback" not in done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    return lines[0]


def wait_for_children(parent: Server, count: int) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if len(httpx.get(f"{parent.url}/_outpost/status").json()["children"]) >= count:
            return
        time.sleep(0.1)
    raise AssertionError(f"{parent.name} has fewer than {count} children")


def status(proxy: Server) -> tuple[int, dict[str, object]]:
    done = outpost("status", "--proxy", proxy.url, "--json", "--timeout", "10")
    assert "Traceback" not in done.stderr
    return done.returncode, orjson.loads(done.stdout)


def test_status_probes_the_tree_and_exits_1_when_any_cache_is_degraded_or_unreachable(
    stack: Stack, sample_sqlite: str
) -> None:
    origin = stack.origin(sample_sqlite)
    site = stack.proxy("site", [origin.url])
    node = stack.proxy("node-1", [site.url, origin.url], parent=site.url)
    wait_for_children(site, 1)

    code, tree = status(site)
    assert code == 0, tree
    assert tree["summary"] == {"caches": 2, "ok": 2, "degraded": 0, "unreachable": 0}
    text = outpost("status", "--proxy", site.url)
    assert text.returncode == 0 and "2 caches: 2 ok, 0 degraded, 0 unreachable" in text.stdout

    origin.kill()  # no fetch has failed yet: only a probe can tell
    code, tree = status(site)
    assert code == 1
    assert tree["summary"] == {"caches": 2, "ok": 0, "degraded": 2, "unreachable": 0}
    probed = tree["upstreams"][origin.url]["probe"]  # type: ignore[index]
    assert probed["reachable"] is False
    text = outpost("status", "--proxy", site.url)
    assert text.returncode == 1 and f"upstream {origin.url} unreachable" in text.stdout

    node.kill()
    code, tree = status(site)
    assert code == 1
    assert tree["summary"] == {"caches": 2, "ok": 0, "degraded": 1, "unreachable": 1}


def test_status_of_a_url_that_is_no_proxy_says_so(stack: Stack, sample_sqlite: str) -> None:
    origin = stack.origin(sample_sqlite)
    code, tree = status(origin)
    assert code == 1
    assert tree["error"] == "not an Outpost proxy: /_outpost/status answered 404"
    text = outpost("status", "--proxy", origin.url)
    assert text.returncode == 1 and "Traceback" not in text.stderr
    assert "not an Outpost proxy" in text.stdout


@pytest.mark.parametrize("json", [False, True])
def test_a_reader_that_goes_away_ends_the_command_quietly(
    stack: Stack, sample_sqlite: str, json: bool
) -> None:
    origin = stack.origin(sample_sqlite)
    command = [sys.executable, "-m", "outpost", "resolve", GLOBAL_TAG, "--run", "500"]
    command += ["--server", origin.url, *(["--json"] if json else [])]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()  # `| head` that has read enough: before anything is written
    code = process.wait(60)
    errors = process.stderr.read().decode()
    process.stderr.close()
    assert code == 141, errors
    assert errors == ""


def test_resolve_shows_run_lumi_keys_and_dashes_not_python(
    stack: Stack, sample_sqlite: str
) -> None:
    origin = stack.origin(sample_sqlite)
    args = ("resolve", GLOBAL_TAG, "--run", "500", "--server", origin.url)
    records = orjson.loads(outpost(*args, "--json").stdout)["records"]
    table = outpost(*args).stdout
    lumi = [r for r in records if r["time_type"] == "run_lumi"]
    open_ended = [r for r in records if r["until"] is None]
    assert lumi and open_ended  # the sample has both: the test would prove nothing otherwise
    for record in lumi:
        run, _, section = iov_key(record["since"], "run_lumi").partition(":")
        assert int(run) << 32 | int(section) == record["since"]
        assert f"{run}:{section}" in table
    assert DASH in table and "None" not in table


def test_errors_of_a_command_asked_for_json_are_json() -> None:
    done = outpost("resolve", "GT", "--run", "1", "--server", f"http://127.0.0.1:{free_port()}")
    assert done.returncode == 1 and one_line_error(done).startswith("outpost: resolve:")
    done = outpost(
        "resolve", "GT", "--run", "1", "--server", f"http://127.0.0.1:{free_port()}", "--json"
    )
    assert done.returncode == 1 and "Traceback" not in done.stderr
    error = orjson.loads(done.stdout)
    assert error["error"] == "failed" and "every endpoint failed" in error["detail"]


def test_an_unknown_log_level_is_a_usage_error() -> None:
    done = outpost("origin", "--log-level", "verbose")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "invalid choice: 'verbose'" in done.stderr


def test_db_load_without_a_database_refuses_and_creates_nothing(tmp_path: Path) -> None:
    conditions = tmp_path / "conditions.yaml"
    conditions.write_text("tags: []\n")
    done = outpost("db", "load", str(conditions), cwd=tmp_path)
    assert done.returncode == 2
    assert "name it with --db" in one_line_error(done)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["conditions.yaml"]


def test_db_load_of_refused_data_exits_1_and_prints_a_summary_when_it_loads(
    tmp_path: Path,
) -> None:
    db = f"sqlite:///{tmp_path / 'c.sqlite'}"
    bad = tmp_path / "bad.json"
    bad.write_text('{"tags": [{"name": 5}]}')
    done = outpost("db", "load", str(bad), "--db", db)
    assert done.returncode == 1 and one_line_error(done).startswith(f"outpost: {bad}: tags[0]")
    good = tmp_path / "good.yaml"
    good.write_text(
        "tags:\n  - name: EcalPedestals\n    time_type: run\n    payload_type: Pedestals\n"
    )
    done = outpost("db", "load", str(good), "--db", db)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == (
        f"loaded {good} into {db}: 0 payloads, 1 tags, 0 IOVs, 0 global tags"
    )


@pytest.mark.parametrize("where", ["missing directory", "unreachable server"])
def test_a_database_that_cannot_be_opened_is_one_line_and_exit_1(
    tmp_path: Path, where: str
) -> None:
    if where == "missing directory":
        url = shown = f"sqlite:///{tmp_path / 'gone' / 'c.sqlite'}"
    else:
        port = free_port()
        url = f"postgresql://conditions:secret@127.0.0.1:{port}/conditions"
        shown = f"postgresql://conditions:***@127.0.0.1:{port}/conditions"
    done = outpost("db", "init", "--db", url)
    assert done.returncode == 1
    line = one_line_error(done)
    assert line.startswith(f"outpost: database {shown}: ") and "secret" not in line


def test_version() -> None:
    done = outpost("--version")
    assert done.returncode == 0
    assert done.stdout.startswith("outpost ") and len(done.stdout.split()) == 2


def test_a_malformed_database_url_is_one_line_without_its_password() -> None:
    done = outpost("db", "init", "--db", "postgresql://conditions:secret@db.example:port/c")
    assert done.returncode == 1
    line = one_line_error(done)
    assert "malformed" in line and "***" in line and "secret" not in line


def test_status_probes_are_shared_so_no_client_can_make_a_proxy_flood_its_upstreams(
    stack: Stack,
) -> None:
    recorder = stack.support_app("recorder")
    proxy = stack.proxy("site", [recorder])

    async def ask() -> None:
        async with httpx.AsyncClient() as client:
            url = f"{proxy.url}/_outpost/status?probe=1"
            answers = await asyncio.gather(*(client.get(url) for _ in range(50)))
        assert all(a.status_code == 200 for a in answers)
        assert all(a.json()["upstreams"][recorder]["probe"]["reachable"] for a in answers)

    asyncio.run(ask())
    recorded = httpx.get(f"{recorder}/_recorded").json()
    probes = [r for r in recorded if r["path"] == "/_outpost/healthz"]
    # 50 askers: one probe in flight at a time, its answer reused for 0.2 s; a few rounds at most
    assert 1 <= len(probes) <= 10
