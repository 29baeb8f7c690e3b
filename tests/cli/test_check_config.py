"""`outpost check-config` reads settings files and the environment as `outpost origin` and
`outpost proxy` do, says `ok` with the values that matter (secrets masked) or one line per
problem, exits 0 or 2, and writes and connects to nothing."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import orjson
import pytest
from support.cli import outpost
from support.stack import TREE_KEYS

SIGNING, PUBLIC = TREE_KEYS
PASSWORD = "s3cret-password"
TOKEN = "run-control-token-of-the-test"
GOOD_TOKENS = '[[token]]\nname = "ops"\nrole = "admin"\ntoken = "t"\n'


def settings_file(path: Path, section: str, table: dict[str, Any]) -> Path:
    lines = "".join(f"{k} = {orjson.dumps(v).decode()}\n" for k, v in table.items())
    path.write_text(f"[{section}]\n{lines}")
    return path


def origin_file(tmp_path: Path, tokens: str = GOOD_TOKENS, **keys: Any) -> Path:
    (tmp_path / "tokens.toml").write_text(tokens)
    table = {
        "db": f"sqlite:///{tmp_path / 'c.sqlite'}",
        "tokens_file": str(tmp_path / "tokens.toml"),
    }
    return settings_file(tmp_path / "origin.toml", "origin", table | keys)


def proxy_file(tmp_path: Path, **keys: Any) -> Path:
    table = {"upstreams": ["http://origin:8080"]} | keys
    return settings_file(tmp_path / "proxy.toml", "proxy", table)


def problems(done: subprocess.CompletedProcess[str], kind: str, source: Path | str) -> list[str]:
    """The problems a failed check printed, one a line, each naming the file; status 2."""
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    prefix = f"{kind} settings {source}: "
    lines = done.stdout.splitlines()
    assert lines and all(line.startswith(prefix) for line in lines), lines
    return [line.removeprefix(prefix) for line in lines]


def check(kind: str, config: Path, env: dict[str, str] | None = None) -> list[str]:
    return problems(
        outpost("check-config", f"--{kind}", str(config), cwd=config.parent, env=env), kind, config
    )


# --- the origin ---------------------------------------------------------------------------


def test_a_good_origin_file_is_ok_with_a_summary_and_the_password_masked(tmp_path: Path) -> None:
    url = f"postgresql+psycopg://outpost:{PASSWORD}@db.invalid:5432/conditions"
    config = origin_file(tmp_path, db=url, port=8090)  # never connected to: .invalid
    done = outpost("check-config", "--origin", str(config), cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == f"origin settings {config}: ok"
    assert "  db = postgresql+psycopg://outpost:***@db.invalid:5432/conditions" in lines
    assert "  listen = 127.0.0.1:8090" in lines
    assert f"  tokens_file = {tmp_path / 'tokens.toml'} (1 token)" in lines
    assert PASSWORD not in done.stdout + done.stderr


def test_origin_problems_are_named_one_a_line_and_nothing_is_written(tmp_path: Path) -> None:
    tokens = '[[token]]\nrole = "admin"\ntoken_sha256 = "9f86d0"\n'  # cut short: never matches
    config = origin_file(tmp_path, tokens, db=f"sqlite:///{tmp_path / 'missing' / 'c.sqlite'}")
    assert check("origin", config) == [
        f"origin.db: directory {tmp_path / 'missing'} does not exist",
        f"tokens file {tmp_path / 'tokens.toml'}, token #1: token_sha256 must be 64 hex digits "
        '(printf %s "$TOKEN" | sha256sum)',
    ]
    ok = origin_file(tmp_path)
    assert outpost("check-config", "--origin", str(ok), cwd=tmp_path).returncode == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["origin.toml", "tokens.toml"]


@pytest.mark.parametrize(
    ("keys", "expected"),
    [
        ({"colour": "blue"}, "[origin] has unknown keys ['colour']"),
        ({"max_body_bytes": "lots"}, "origin.max_body_bytes='lots': expected a size"),
        ({"db": "mysql://h/db"}, "origin.db: database 'mysql' is not supported"),
        ({"db": f"postgresql://u:{PASSWORD}@h:port/db"}, "origin.db: database URL 'postgresql"),
        ({"db": "sqlite:///text.sqlite"}, "origin.db: text.sqlite is not a SQLite database"),
        ({"payload_store": "files", "payload_dir": "a-file/payloads"}, "origin.payload_dir="),
    ],
    ids=["unknown-key", "bad-size", "driver", "malformed-url", "not-sqlite", "payload-dir"],
)
def test_what_the_origin_would_refuse_is_a_problem(
    tmp_path: Path, keys: dict[str, str], expected: str
) -> None:
    (tmp_path / "text.sqlite").write_text("a text file\n")
    (tmp_path / "a-file").write_text("not a directory\n")
    (found,) = check("origin", origin_file(tmp_path, **keys))
    assert found.startswith(expected), found
    assert PASSWORD not in found


def test_a_tokens_file_check_config_refuses_stops_the_origin_too(tmp_path: Path) -> None:
    config = origin_file(tmp_path, tokens="token = 1\n")  # not [[token]] tables
    refused = f"tokens file {tmp_path / 'tokens.toml'}: expected [[token]] tables"
    assert check("origin", config) == [refused]
    served = outpost("origin", "--config", str(config), "--port", "9", cwd=tmp_path)
    assert served.returncode == 2
    assert served.stderr.strip().splitlines()[-1] == f"outpost: {refused}"


# --- a proxy ------------------------------------------------------------------------------


def test_a_good_proxy_with_its_environment_is_ok_and_shows_no_secret(tmp_path: Path) -> None:
    config = proxy_file(tmp_path, name="site-a", cache_size="2GiB")
    env = {
        "OUTPOST_RUN_CONTROL_TOKEN": TOKEN,
        "OUTPOST_PROXY_TREE_SIGNING_KEY": SIGNING,
        "OUTPOST_PROXY_REDIS": f"redis://:{PASSWORD}@redis:6379/0",
        "OUTPOST_PROXY_SHARED_TIER_KEY": "a-shared-tier-key-of-32-characters",
    }
    done = outpost("check-config", "--proxy", str(config), "--json", cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    document = orjson.loads(done.stdout)
    assert document["ok"] is True
    (checked,) = document["checked"]
    assert checked["file"] == str(config) and checked["problems"] == []
    summary = checked["settings"]
    assert summary["name"] == "site-a" and summary["cache_size"] == "2048 MiB"
    assert summary["redis"] == "redis://:***@redis:6379/0"
    assert summary["run_control_token"] == summary["tree_signing_key"] == "***"
    assert summary["register_token"] is None
    assert summary["tree_public_key"] == PUBLIC  # derived from the signing key, as at start-up
    for secret in (TOKEN, SIGNING, PASSWORD, "a-shared-tier-key"):
        assert secret not in done.stdout


def test_the_environment_counts_as_the_server_sees_it(tmp_path: Path) -> None:
    config = proxy_file(tmp_path)
    assert check("proxy", config, env={"OUTPOST_PROXY_CACHE_SIZE": "12 parsecs"}) == [
        "proxy.cache_size='12 parsecs': expected a size such as 1048576, 512KiB or 64MiB"
    ]
    env = {"OUTPOST_PROXY_UPSTREAMS": "http://origin:8080"}
    alone = outpost("check-config", "--proxy", cwd=tmp_path, env=env)  # no file at all
    assert alone.returncode == 0, alone.stdout
    assert alone.stdout.splitlines()[0] == "proxy settings (environment): ok"


def test_a_child_that_would_break_the_tree_is_named(tmp_path: Path) -> None:
    config = proxy_file(tmp_path, parent="http://site.example:8081")
    assert [line.split(":")[0] for line in check("proxy", config)] == [
        "proxy.parent is set but proxy.register_token is not",
        "proxy.parent is set but proxy.tree_public_key is not",
        "proxy.advertise_url",  # http://127.0.0.1:8081: the parent's own machine
    ]
    env = {
        "OUTPOST_PROXY_REGISTER_TOKEN": "register",
        "OUTPOST_PROXY_TREE_PUBLIC_KEY": PUBLIC,
        "OUTPOST_PROXY_ADVERTISE_URL": "http://node-7.example:8081",
    }
    fixed = outpost("check-config", "--proxy", str(config), cwd=tmp_path, env=env)
    assert fixed.returncode == 0, fixed.stdout


@pytest.mark.parametrize(
    ("keys", "expected"),
    [
        (
            {"upstreams": ["ftp://origin"]},
            "[proxy]: proxy: 'ftp://origin' is not an http:// or https://",
        ),
        ({"upstreams": ["http://origin:80x"]}, "proxy.upstreams: 'http://origin:80x': Port"),
        ({"upstreams": ["http://"]}, "proxy.upstreams: 'http://' names no host"),
        ({"tree_public_key": "not-a-key"}, "proxy.tree_public_key: tree public key is not"),
        ({"tree_signing_key": "c2hvcnQ"}, "[proxy]: proxy.tree_signing_key: tree signing key must"),
        ({"redis": "http://r:6379", "shared_tier_key": "0123456789abcdef"}, "proxy.redis: "),
        ({"workers": 2, "state_dir": "a-file/state"}, "proxy.state_dir='a-file/state' cannot"),
        ({"cache_size": 0}, "[proxy]: proxy.cache_size=0: must be positive"),
    ],
    ids=["scheme", "port", "no-host", "public-key", "signing-key", "redis", "state-dir", "size"],
)
def test_what_a_proxy_would_refuse_or_fail_on_is_a_problem(
    tmp_path: Path, keys: dict[str, Any], expected: str
) -> None:
    (tmp_path / "a-file").write_text("not a directory\n")
    (found,) = check("proxy", proxy_file(tmp_path, **keys))
    assert found.startswith(expected), found


# --- the command --------------------------------------------------------------------------


def test_json_problems_carry_the_error_and_detail_every_command_uses(tmp_path: Path) -> None:
    origin, proxy = origin_file(tmp_path), proxy_file(tmp_path, colour=1)
    done = outpost(
        "check-config", "--origin", str(origin), "--proxy", str(proxy), "--json", cwd=tmp_path
    )
    assert done.returncode == 2
    document = orjson.loads(done.stdout)
    assert document["ok"] is False and document["error"] == "usage"
    assert document["detail"].startswith("proxy: [proxy] has unknown keys ['colour']")
    checked = [(c["kind"], c["ok"]) for c in document["checked"]]
    assert checked == [("origin", True), ("proxy", False)]


def test_nothing_to_check_is_a_usage_error(tmp_path: Path) -> None:
    done = outpost("check-config", cwd=tmp_path)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip() == "outpost: check-config needs --origin [FILE] or --proxy [FILE]"
    as_json = outpost("check-config", "--json", cwd=tmp_path)
    assert as_json.returncode == 2
    assert orjson.loads(as_json.stdout)["error"] == "usage"
