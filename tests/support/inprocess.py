"""An `HttpClient` for in-process tests: the proxy's upstreams are ASGI apps behind an httpx
client (`httpx.ASGITransport`, mounted per host), so RFC 9111 behaviour is tested without sockets
and with a hand-moved clock. The real client, `proxy.http_client.AiohttpClient`, is tested
against real servers in `tests/proxy/test_http_client.py` and end to end."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

import httpx

from proxy.http_client import RawResponse, UpstreamTimeout, UpstreamUnreachable, check_sendable

__all__ = ["InProcessUpstream"]


class InProcessUpstream:
    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client
        self.client.headers.pop("accept-encoding", None)  # as AiohttpClient: no coding of its own

    async def send(
        self,
        method: str,
        base: str,
        target: str,
        headers: Sequence[tuple[bytes, bytes]],
        body: bytes | None,
    ) -> RawResponse:
        check_sendable(target, headers)
        request = self.client.build_request(method, base + target, headers=headers, content=body)
        try:
            response = await self.client.send(request, stream=True)
        except httpx.TimeoutException as exc:
            raise UpstreamTimeout(type(exc).__name__) from None
        except httpx.HTTPError as exc:
            raise UpstreamUnreachable(f"{type(exc).__name__}: {exc}") from None
        declared = response.headers.get("content-length")
        length = int(declared) if declared is not None and declared.isdigit() else None
        return RawResponse(response.status_code, response.headers.raw, _Body(response), length)

    async def aclose(self) -> None:
        await self.client.aclose()


class _Body:
    def __init__(self, response: httpx.Response) -> None:
        self.response = response

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self.response.aiter_raw():
                yield chunk
        except httpx.HTTPError as exc:
            raise UpstreamUnreachable(f"reading the body: {type(exc).__name__}") from None

    async def aclose(self) -> None:
        await self.response.aclose()
