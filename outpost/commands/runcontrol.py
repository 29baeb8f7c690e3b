"""`outpost flush`: flush the cache tree below a proxy before a run, and say who acknowledged.

Exit status 0 only if every cache in the tree acknowledged; the failed ones are listed.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

import httpx
import orjson

__all__ = ["add_parser", "flush"]


def add_parser(commands: Any) -> None:
    flush_parser = commands.add_parser("flush", help="flush the cache tree below a proxy")
    flush_parser.add_argument("--run", type=int, required=True, help="the coming run number")
    flush_parser.add_argument("--proxy", required=True, help="URL of the top proxy of the tree")
    flush_parser.add_argument("--token", help="run-control token ($OUTPOST_RUN_CONTROL_TOKEN)")
    flush_parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait")
    flush_parser.add_argument("--json", action="store_true", help="print the answer as JSON")
    flush_parser.set_defaults(handler=_flush)


def flush(proxy: str, run: int, token: str | None, timeout: float = 60.0) -> dict[str, Any]:
    """POST the flush; the proxy's JSON answer, or an error document naming the problem."""
    headers = {"authorization": f"Bearer {token}"} if token else {}
    try:
        response = httpx.post(
            proxy.rstrip("/") + "/_outpost/flush",
            json={"run": run},
            headers=headers,
            timeout=timeout,
        )
    except httpx.HTTPError as exc:
        return {"error": f"{proxy}: {type(exc).__name__}: {exc}", "acked": 0, "failed": []}
    try:
        answer: dict[str, Any] = response.json()
    except ValueError:
        answer = {"error": f"{proxy} answered {response.status_code} without JSON"}
    if response.status_code != 200:
        return {"error": answer.get("detail") or answer.get("error"), "acked": 0, "failed": []}
    return answer


def _flush(args: argparse.Namespace) -> int:
    token = args.token or os.environ.get("OUTPOST_RUN_CONTROL_TOKEN")
    answer = flush(args.proxy, args.run, token, args.timeout)
    if args.json:
        print(orjson.dumps(answer).decode())
    elif "error" in answer:
        print(f"flush failed: {answer['error']}", file=sys.stderr)
    else:
        print(
            f"run {answer['run']}: epoch {answer['epoch']}, {answer['acked']} caches acknowledged"
        )
        for failure in answer["failed"]:
            print(f"  not acknowledged: {failure['name']} {failure['url']}: {failure['error']}")
    return 0 if "error" not in answer and not answer["failed"] else 1
