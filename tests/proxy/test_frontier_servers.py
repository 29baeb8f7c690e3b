"""`outpost proxy` where a site squid stands, with real processes: Frontier clients' HTTP/1.0
forward-proxy requests over raw sockets, exactly as frontier_client writes them, on uvicorn
(`outpost proxy`, httptools), on granian (`--server granian`) and on uvicorn's h11
implementation (`uvicorn --http h11 --factory proxy.main:app_from_environment`, the one server
that passes the absolute-form target to the app).

frontier_client cannot read chunked bodies: every answer must carry Content-Length, or have
none by definition (a 304) and close the connection. The upstream is a small Frontier servlet
in this process (max-age, Last-Modified, If-Modified-Since; one big answer sent chunked).
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from support.frontier_wire import Answer, FrontierClient
from support.servers import free_port, outpost_command, run_process

LAST_MODIFIED = "Fri, 01 Jan 2027 00:00:00 GMT"
SERVLET = "/outpost/Frontier"
BIG = bytes(range(256)) * 800  # 200 KiB, over the proxies' max_object_bytes (64 KiB)
ALLOWED = "allowed.example:8000,alias.example"
SERVERS = ["uvicorn", "granian", "h11"]

# --- the Frontier servlet upstream -------------------------------------------------------------


@dataclass
class Servlet:
    url: str
    seen: list[tuple[str, dict[str, str]]] = field(default_factory=list)

    def count(self, path: str) -> int:
        return sum(1 for p, _ in self.seen if p == path)

    def last(self, path: str) -> dict[str, str]:
        return next(h for p, h in reversed(self.seen) if p == path)


def servlet_handler(servlet: Servlet) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            headers = {k.lower(): v for k, v in self.headers.items()}
            servlet.seen.append((self.path, headers))
            if "/fail" in self.path:
                self._answer(500, b"servlet error", {})
            elif "/big" in self.path:
                self.send_response(200)
                self.send_header("content-type", "application/octet-stream")
                self.send_header("transfer-encoding", "chunked")  # length unknown up front
                self.end_headers()
                for start in range(0, len(BIG), 50_000):
                    chunk = BIG[start : start + 50_000]
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                self.wfile.write(b"0\r\n\r\n")
            elif headers.get("if-modified-since") == LAST_MODIFIED:
                self._answer(304, b"", {"cache-control": "max-age=300"})
            else:
                body = b"<frontier>" + self.path.encode() + b"</frontier>"
                self._answer(
                    200, body, {"cache-control": "max-age=300", "content-type": "text/xml"}
                )

        def _answer(self, status: int, body: bytes, headers: dict[str, str]) -> None:
            self.send_response(status)
            for name, value in {**headers, "last-modified": LAST_MODIFIED}.items():
                self.send_header(name, value)
            if status != 304:
                self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


@pytest.fixture(scope="module")
def servlet() -> Iterator[Servlet]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    servlet = Servlet(f"http://127.0.0.1:{server.server_address[1]}")
    server.RequestHandlerClass = servlet_handler(servlet)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield servlet
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


# --- the proxies -------------------------------------------------------------------------------


@dataclass
class Proxy:
    server: str
    port: int


def start_proxy(
    server: str, name: str, servlet: Servlet, root: Path, stack: contextlib.ExitStack, **env: str
) -> Proxy:
    port = free_port()
    variables = {
        "OUTPOST_PROXY_NAME": name,
        "OUTPOST_PROXY_UPSTREAMS": servlet.url,
        "OUTPOST_PROXY_PORT": str(port),
        "OUTPOST_PROXY_MAX_OBJECT_BYTES": "65536",
        "OUTPOST_PROXY_RETRIES": "0",
        **{f"OUTPOST_PROXY_{k.upper()}": v for k, v in env.items()},
    }
    if server == "h11":
        command = [sys.executable, "-m", "uvicorn", "--factory", "proxy.main:app_from_environment"]
        command += ["--http", "h11", "--port", str(port), "--log-level", "warning"]
        command += ["--no-server-header", "--no-date-header", "--no-proxy-headers"]  # as serve
    else:
        command = outpost_command("proxy", "--server", server, "--log-level", "warning")
    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith("OUTPOST_")},
        **variables,
    }
    stack.enter_context(
        run_process(
            command,
            root / f"{name}.log",
            ready_url=f"http://127.0.0.1:{port}/_outpost/healthz",
            env=environment,
        )
    )
    return Proxy(server, port)


@pytest.fixture(scope="module", params=SERVERS)
def proxy(
    request: pytest.FixtureRequest, servlet: Servlet, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Proxy]:
    with contextlib.ExitStack() as stack:
        root = tmp_path_factory.mktemp(request.param)
        yield start_proxy(request.param, "edge", servlet, root, stack, forward_destinations=ALLOWED)


def frontier_path(name: str) -> str:
    return f"{SERVLET}/type=frontier_request:1:DEFAULT&encoding=BLOBzip&p1=eNpz{name}"


def assert_framed(answer: Answer) -> None:
    """Content-Length, or no body by definition and the connection closed."""
    if "content-length" not in answer.headers:
        assert answer.status in (204, 304) and answer.closed, answer


# --- the tests ---------------------------------------------------------------------------------


def test_a_frontier_client_through_the_proxy_gets_content_length_then_a_hit(
    proxy: Proxy, servlet: Servlet
) -> None:
    path = frontier_path(f"first{proxy.server}")
    with FrontierClient(proxy.port) as client:
        first = client.get(f"http://allowed.example:8000{path}", "allowed.example")
        second = client.get(f"http://allowed.example:8000{path}", "allowed.example")
    for answer in (first, second):
        assert answer.status == 200 and answer.body == f"<frontier>{path}</frontier>".encode()
        assert answer.headers["content-length"] == str(len(answer.body))
        assert answer.headers["content-type"] == "text/xml"
    assert first.headers["cache-status"] == "edge; fwd=miss; fwd-status=200; stored"
    assert second.headers["cache-status"].startswith("edge; hit; ttl=")
    assert servlet.count(path) == 1  # the path went upstream, the destination was not dialled
    assert servlet.last(path)["x-frontier-id"] == "test 1.0 pid=1; user"
    if proxy.server == "granian":
        assert client.connections == 1  # granian keeps HTTP/1.0 keep-alive connections


def test_two_allowed_aliases_share_entries(proxy: Proxy, servlet: Servlet) -> None:
    path = frontier_path(f"alias{proxy.server}")
    with FrontierClient(proxy.port) as client:
        client.get(f"http://allowed.example:8000{path}", "allowed.example")
        alias = client.get(f"http://alias.example:8080{path}", "alias.example")
    assert alias.headers["cache-status"].startswith("edge; hit")
    assert servlet.count(path) == 1


@pytest.mark.parametrize(
    ("target", "host"),
    [("http://evil.example:8000", "evil.example"), ("http://allowed.example.evil.com", None)],
)
def test_a_disallowed_destination_gets_403_json(
    proxy: Proxy, servlet: Servlet, target: str, host: str | None
) -> None:
    path = frontier_path(f"evil{proxy.server}")
    authority = target.split("://")[1]
    with FrontierClient(proxy.port) as client:
        refused = client.get(target + path, host or authority)
    assert refused.status == 403
    assert_framed(refused)
    body = refused.json()
    assert body["error"] == "forbidden"
    assert authority.split(":")[0] in str(body["detail"])
    accepted = body["accepted"]
    assert isinstance(accepted, dict) and accepted["setting"] == "proxy.forward_destinations"
    assert accepted["destinations"] == ["allowed.example:8000", "alias.example"]
    assert servlet.count(path) == 0


def test_what_each_server_shows_of_the_target(proxy: Proxy, servlet: Servlet) -> None:
    """h11 passes the absolute-form target: its port and user information count, and Host is
    ignored. httptools and granian pass the path only: the Host header names the destination."""
    path = frontier_path(f"target{proxy.server}")
    with FrontierClient(proxy.port) as client:
        other_port = client.get(f"http://allowed.example:9999{path}", "allowed.example")
        userinfo = client.get(f"http://allowed.example@evil.example{path}", "allowed.example")
        spoofed = client.get(f"http://evil.example:8000{path}", "allowed.example")
    if proxy.server == "h11":
        assert (other_port.status, userinfo.status, spoofed.status) == (403, 400, 403)
    else:
        assert (other_port.status, spoofed.status) == (200, 200)
        assert userinfo.status in (200, 400)  # a server may refuse user information itself
    for answer in (other_port, userinfo, spoofed):
        assert_framed(answer)


def test_every_kind_of_answer_carries_content_length(proxy: Proxy, servlet: Servlet) -> None:
    path = frontier_path(f"kinds{proxy.server}")
    target = f"http://allowed.example:8000{path}"
    answers: dict[str, Answer] = {}
    with FrontierClient(proxy.port) as client:
        answers["miss"] = client.get(target, "allowed.example")
        answers["hit"] = client.get(target, "allowed.example")
        answers["head"] = client.get(target, "allowed.example", method="HEAD")
        answers["soft refresh"] = client.get(
            target, "allowed.example", cache_control="max-stale=1,max-age=0"
        )
        answers["hard refresh"] = client.get(
            target, "allowed.example", extra="Pragma: no-cache\r\n"
        )
        answers["304"] = client.get(
            target, "allowed.example", extra=f"If-Modified-Since: {LAST_MODIFIED}\r\n"
        )
        answers["error"] = client.get(
            f"http://allowed.example:8000{SERVLET}/fail{proxy.server}", "allowed.example"
        )
        answers["big"] = client.get(
            f"http://allowed.example:8000{SERVLET}/big{proxy.server}", "allowed.example"
        )
        answers["admin"] = client.get("/_outpost/healthz", f"127.0.0.1:{proxy.port}")
        answers["admin 404"] = client.get("/_outpost/nothing", f"127.0.0.1:{proxy.port}")
        answers["metrics"] = client.get("/_outpost/metrics", f"127.0.0.1:{proxy.port}")
    statuses = {kind: answer.status for kind, answer in answers.items()}
    assert statuses == {
        "miss": 200,
        "hit": 200,
        "head": 200,
        "soft refresh": 200,
        "hard refresh": 200,
        "304": 304,
        "error": 500,  # the servlet's own answer, passed on once every upstream failed
        "big": 200,
        "admin": 200,
        "admin 404": 404,
        "metrics": 200,
    }
    for kind, answer in answers.items():
        assert_framed(answer)
        assert kind == "304" or "content-length" in answer.headers, kind
    assert answers["head"].headers["content-length"] == str(len(answers["hit"].body))
    assert "detail=request" in answers["soft refresh"].headers["cache-status"]
    assert servlet.last(path).get("pragma") == "no-cache"  # the hard refresh went up whole
    assert "if-modified-since" not in servlet.last(path)
    assert answers["304"].closed
    assert answers["big"].body == BIG  # over max_object_bytes, sent chunked by the servlet
    assert answers["error"].body == b"servlet error"


def test_a_client_outside_the_client_networks_gets_403(servlet: Servlet, tmp_path: Path) -> None:
    for server in ("uvicorn", "granian"):
        with contextlib.ExitStack() as stack:
            closed = start_proxy(
                server,
                f"closed-{server}",
                servlet,
                tmp_path,
                stack,
                forward_destinations=ALLOWED,
                client_networks="10.0.0.0/8,fd00::/8",
            )
            path = frontier_path(f"closed{server}")
            with FrontierClient(closed.port) as client:
                refused = client.get(f"http://allowed.example:8000{path}", "allowed.example")
                health = client.get("/_outpost/healthz", f"127.0.0.1:{closed.port}")
            assert refused.status == 403, server
            assert_framed(refused)
            body = refused.json()
            assert "127.0.0.1" in str(body["detail"])
            accepted = body["accepted"]
            assert isinstance(accepted, dict) and accepted["setting"] == "proxy.client_networks"
            assert health.status == 200  # admin routes are not subject to client networks
            assert servlet.count(path) == 0
