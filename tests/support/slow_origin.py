"""An upstream that takes its time: each answer to `/slow/<name>?delay=S[&status=N][&vary=1]`
comes after S seconds, so requests for a URL pile up behind the proxy's one fetch of it.
`/count/<name>` tells how many times `/slow/<name>` (or `/reflect/<name>`) was asked for. A 200
is cacheable for a minute; with `vary=1` it varies on Accept-Encoding and is "gzip"-coded (a
marker, not real gzip) for requests that accept gzip.

`/reflect/<name>?delay=S[&cookie=1]` is a careless upstream: after S seconds it answers,
cacheable and without Vary, with every request field it received (and with `cookie=1` a
`Set-Cookie`), as upstreams that build links from X-Forwarded-Host or keep sessions do.

Run as `python -m uvicorn --app-dir tests/support slow_origin:app`.
"""

from __future__ import annotations

import asyncio
import collections
from urllib.parse import parse_qs

import orjson
from starlette.types import Receive, Scope, Send

asked: collections.Counter[str] = collections.Counter()


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    path: str = scope["path"]
    query = {k: v[0] for k, v in parse_qs(scope["query_string"].decode()).items()}
    headers = [(b"content-type", b"application/json")]
    status = 200
    if path.startswith("/slow/"):
        name = path.removeprefix("/slow/")
        asked[name] += 1
        await asyncio.sleep(float(query.get("delay", "0")))
        status = int(query.get("status", "200"))
        coding = "identity"
        if query.get("vary") == "1":
            headers.append((b"vary", b"Accept-Encoding"))
            accept = dict(scope["headers"]).get(b"accept-encoding", b"")
            if b"gzip" in accept:
                coding = "gzip"
                headers.append((b"content-encoding", b"gzip"))
        body = orjson.dumps({"name": name, "fetch": asked[name], "coding": coding})
        if status == 200:
            headers.append((b"cache-control", b"public, max-age=60"))
    elif path.startswith("/reflect/"):
        name = path.removeprefix("/reflect/")
        asked[name] += 1
        await asyncio.sleep(float(query.get("delay", "0")))
        received = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        body = orjson.dumps({"name": name, "fetch": asked[name], "headers": received})
        headers.append((b"cache-control", b"public, max-age=60"))
        if query.get("cookie") == "1":
            headers.append((b"set-cookie", b"session=%d; Path=/" % asked[name]))
    elif path.startswith("/count/"):
        body = orjson.dumps(asked[path.removeprefix("/count/")])
    else:
        body = b'{"status": "ok"}'
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
