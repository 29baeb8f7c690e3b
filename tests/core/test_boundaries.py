"""The pure core stays pure, and every module's `__all__` names what it really exports."""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# Pure modules and the top-level packages each may import (beyond the standard library).
PURE: dict[str, set[str]] = {
    "outpost/urls.py": {"outpost"},
    "outpost/errors.py": {"orjson"},
    "origin/query": {"outpost", "origin", "sqlalchemy", "orjson"},
    "outpost/coding.py": set(),
    "outpost/feed.py": {"outpost", "orjson"},
    # Ed25519, JSON, structured fields (RFC 8941): no I/O
    "proxy/core": {"outpost", "proxy", "cryptography", "orjson", "http_sfv"},
    "outpost/client/endpoints.py": {"outpost"},
    "outpost/client/walk.py": {"outpost", "orjson"},
    "outpost/client/answers.py": {"outpost", "orjson"},
    "outpost/client/errors.py": {"outpost"},
    "outpost/client/feed.py": {"outpost"},
}
# Within `outpost.client`, the pure modules may import only each other.
PURE_CLIENT = {
    "outpost.client.endpoints",
    "outpost.client.walk",
    "outpost.client.answers",
    "outpost.client.errors",
    "outpost.client.feed",
}
# Within `origin`, the pure core may import only the schema (metadata, no engine).
ALLOWED_ORIGIN_MODULES = {"origin.schema", "origin.query"}
IO_LIBRARIES = {
    "socket",
    "asyncio",
    "anyio",
    "httpx",
    "starlette",
    "uvicorn",
    "redis",
    "psycopg",
    "sqlite3",
    "subprocess",
    "time",
    "threading",
    "urllib.request",
}
SQLALCHEMY_IO = {"sqlalchemy.engine", "sqlalchemy.orm", "sqlalchemy.ext.asyncio"}


def _pure_files() -> list[Path]:
    files: list[Path] = []
    for entry in PURE:
        path = ROOT / entry
        files.extend(sorted(path.glob("*.py")) if path.is_dir() else [path])
    return files


def _imports(path: Path) -> list[str]:
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


@pytest.mark.parametrize("path", _pure_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_pure_modules_import_no_io(path: Path) -> None:
    entry = next(e for e in PURE if str(path.relative_to(ROOT)).startswith(e))
    allowed = PURE[entry] | {"__future__"}
    for name in _imports(path):
        top = name.split(".")[0]
        assert name not in IO_LIBRARIES and top not in IO_LIBRARIES, f"{path}: imports {name}"
        assert not any(name.startswith(io) for io in SQLALCHEMY_IO), f"{path}: imports {name}"
        if top == "origin":
            assert any(name.startswith(m) for m in ALLOWED_ORIGIN_MODULES), f"{path}: {name}"
        if top == "proxy":
            assert name.startswith("proxy.core"), f"{path}: imports {name}"
        if name.startswith("outpost.client"):
            assert name in PURE_CLIENT, f"{path}: imports the driver module {name}"
        if top in allowed or _is_stdlib(top):
            continue
        pytest.fail(f"{path} imports {name}; allowed: standard library and {sorted(allowed)}")


def _is_stdlib(name: str) -> bool:
    import sys

    return name in sys.stdlib_module_names


def _modules() -> list[str]:
    names = []
    for package in ("outpost", "origin", "proxy"):
        module = importlib.import_module(package)
        names.append(package)
        for info in pkgutil.walk_packages(module.__path__, prefix=f"{package}."):
            if ".migrations" not in info.name and info.name != "outpost.__main__":
                names.append(info.name)
    return names


@pytest.mark.parametrize("name", _modules())
def test_all_names_only_what_exists(name: str) -> None:
    module = importlib.import_module(name)
    for exported in getattr(module, "__all__", []):
        assert hasattr(module, exported), f"{name}.__all__ names missing {exported!r}"
