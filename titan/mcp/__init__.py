"""Titan over the Model Context Protocol: `titan mcp` or `python -m titan.mcp`, so an AI client (Claude
Desktop, Claude Code, an agent loop) can submit and watch work. Needs the optional extra
`titan-scheduler[mcp]`; this package imports the MCP SDK only when the server starts (titan.mcp.server)."""

from titan.mcp.command import add_commands, main

__all__ = ["add_commands", "main"]
