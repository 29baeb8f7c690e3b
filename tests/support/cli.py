"""The `outpost` command as a subprocess, with none of this process's OUTPOST_* settings."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

__all__ = ["outpost"]


def outpost(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OUTPOST_")}
    return subprocess.run(
        [sys.executable, "-m", "outpost", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env={**clean, **(env or {})},
    )
