"""The MCP server over streamable HTTP, behind an optional bearer token.

The SDK's HTTP transport has no login of its own (only OAuth, which needs an authorization server), and
an MCP client here can run code on every worker: given a token, every request must carry it as
`Authorization: Bearer TOKEN` or gets 401."""

from __future__ import annotations

import hmac
from typing import Optional

import anyio
import uvicorn
from mcp.server.mcpserver import MCPServer
from starlette.responses import PlainTextResponse


class BearerToken:
    """ASGI middleware: HTTP requests without the token are refused; lifespan events pass through."""

    def __init__(self, app, token: str):
        self.app, self.expected = app, f"Bearer {token}".encode()

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            given = dict(scope["headers"]).get(b"authorization", b"")
            if not hmac.compare_digest(given, self.expected):
                refusal = PlainTextResponse("titan mcp: this server needs 'Authorization: Bearer <token>'\n",
                                            status_code=401, headers={"WWW-Authenticate": "Bearer"})
                await refusal(scope, receive, send)
                return
        await self.app(scope, receive, send)


def serve(server: MCPServer, host: str, port: int, path: str, token: Optional[str]) -> None:
    """Serve at http://host:port/path until SIGINT or SIGTERM (uvicorn handles both, shutting down cleanly)."""
    app = server.streamable_http_app(streamable_http_path=path, host=host)
    config = uvicorn.Config(BearerToken(app, token) if token else app, host=host, port=port, log_level="warning")
    anyio.run(uvicorn.Server(config).serve)
