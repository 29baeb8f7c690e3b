"""An HTTP origin whose answers each test scripts, and which records what reached it.

The proxy is a shared cache for *any* origin; these tests put it in front of this one to
exercise RFC 9111 behaviour that Outpost's own origin never shows (Expires, private, Vary on
other fields, 5xx, huge bodies...). It is a plain ASGI app reached through httpx's transport.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from starlette.types import Receive, Scope, Send

__all__ = ["Answer", "ScriptedOrigin"]


@dataclass
class Answer:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b"hello"


@dataclass
class ScriptedOrigin:
    answers: dict[str, Answer] = field(default_factory=dict)
    seen: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    not_modified: bool = True  # answer 304 to a matching If-None-Match

    def script(self, target: str, answer: Answer) -> None:
        self.answers[target] = answer

    def count(self, target: str, method: str = "GET") -> int:
        return sum(1 for m, t, _ in self.seen if t == target and m == method)

    def last_headers(self, target: str) -> dict[str, str]:
        return next(h for _, t, h in reversed(self.seen) if t == target)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "http"
        query = scope["query_string"].decode()
        target = scope["path"] + (f"?{query}" if query else "")
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        self.seen.append((scope["method"], target, headers))
        while (await receive()).get("more_body"):
            pass
        answer = self.answers.get(target, Answer(404, {"cache-control": "no-store"}, b"no"))
        etag = answer.headers.get("etag")
        if self.not_modified and etag and headers.get("if-none-match") == etag:
            out = [(k.encode(), v.encode()) for k, v in answer.headers.items()]
            await send({"type": "http.response.start", "status": 304, "headers": out})
            await send({"type": "http.response.body", "body": b""})
            return
        out = [(k.encode(), v.encode()) for k, v in answer.headers.items()]
        out.append((b"content-length", str(len(answer.body)).encode()))
        await send({"type": "http.response.start", "status": answer.status, "headers": out})
        body = b"" if scope["method"] == "HEAD" else answer.body  # its length, not its bytes
        await send({"type": "http.response.body", "body": body})
