"""The least an ASGI cache can do per hit: one dictionary read and two `send`s.

`server_floor.py` runs this app on the same server, with the same server settings, as
`outpost proxy`, answering each path with the exact status, headers and body that the proxy
answered it with (recorded in a pickle file). Its CPU per request is the floor under any ASGI
cache on that server: what Outpost's own code adds is the difference.

    python benchmarks/bare_asgi.py ANSWERS.pickle --port P [--server uvicorn|granian]
"""

from __future__ import annotations

import argparse
import os
import pickle
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from outpost.commands.serve import _serve, _serve_granian

ANSWERS_VARIABLE = "BARE_ASGI_ANSWERS"  # granian's forked workers rebuild the app from it
Answer = tuple[int, list[tuple[bytes, bytes]], bytes]
NOT_FOUND: Answer = (404, [(b"content-length", b"0")], b"")
HEALTHY: Answer = (200, [(b"content-length", b"2")], b"ok")  # where the harness waits


def create_app(answers: dict[str, Answer]) -> Any:
    answers = {"/_outpost/healthz": HEALTHY, **answers}

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                await send({"type": message["type"] + ".complete"})
                if message["type"] == "lifespan.shutdown":
                    return
        status, headers, body = answers.get(scope["path"], NOT_FOUND)
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return app


def app_from_environment() -> Any:
    answers: dict[str, Answer] = pickle.loads(Path(os.environ[ANSWERS_VARIABLE]).read_bytes())
    return create_app(answers)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("answers", type=Path, help="pickle of {path: (status, headers, body)}")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--server", choices=("uvicorn", "granian"), default="uvicorn")
    args = parser.parse_args()
    os.environ[ANSWERS_VARIABLE] = str(args.answers.resolve())
    # outpost proxy's own server settings (keep-alive, backlog, no access log)
    settings = SimpleNamespace(host="127.0.0.1", port=args.port, workers=1, keepalive_seconds=120)
    if args.server == "granian":
        return _serve_granian("bare_asgi:app_from_environment", settings, "warning")
    return _serve(app_from_environment(), settings, "warning", own_headers=False)


if __name__ == "__main__":
    sys.exit(main())
