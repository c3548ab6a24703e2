"""Talk to a real `titan mcp` process through the MCP SDK's own client, over stdio or streamable HTTP."""

from __future__ import annotations

import socket
import time
from contextlib import asynccontextmanager
from typing import AsyncIterator

import pytest

from tests.conftest import TITAN

mcp = pytest.importorskip("mcp", reason="the MCP SDK is not installed: pip install -e '.[mcp]'")

import httpx2  # noqa: E402
from mcp import ClientSession, StdioServerParameters, stdio_client  # noqa: E402
from mcp.client.streamable_http import streamable_http_client  # noqa: E402


def master_environment(cluster) -> dict:
    return {"TITAN_HOST": cluster.host, "TITAN_PORT": str(cluster.port)}


@asynccontextmanager
async def stdio_session(environment: dict, errlog, *arguments: str) -> AsyncIterator[ClientSession]:
    """`titan mcp` as a subprocess the SDK starts, and stops when the block ends."""
    server = StdioServerParameters(command=TITAN, args=["mcp", *arguments], env=environment)
    async with stdio_client(server, errlog=errlog) as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            yield session


@asynccontextmanager
async def http_session(url: str, token: str) -> AsyncIterator[ClientSession]:
    async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30) as http:
        async with streamable_http_client(url, http_client=http) as (read, write):
            async with ClientSession(read, write) as session:
                await session.initialize()
                yield session


async def call(session: ClientSession, tool: str, **arguments) -> dict:
    """The tool's structured result; fails the test with the tool's error text if it reported one."""
    result = await session.call_tool(tool, arguments)
    assert not result.is_error, f"{tool} failed: {result.content[0].text}"
    assert result.structured_content is not None, f"{tool} returned no structured content"
    return result.structured_content


async def call_error(session: ClientSession, tool: str, **arguments) -> str:
    """The text of the tool error the call must end in."""
    result = await session.call_tool(tool, arguments)
    assert result.is_error, f"{tool} should have failed, returned {result.structured_content}"
    return result.content[0].text


def free_loopback_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_port(port: int, process, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, f"titan mcp --http exited early: {process.communicate()}"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"titan mcp --http did not listen on 127.0.0.1:{port} within {timeout:g}s")
