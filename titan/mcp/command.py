"""`titan mcp` (wired into titan/cli/parser.py through add_commands) and `python -m titan.mcp`: serve the
MCP server over stdio (what desktop clients launch) or streamable HTTP (`--http HOST:PORT`)."""

from __future__ import annotations

import argparse
import os
import sys
from typing import List, Optional, Tuple

from titan import defaults
from titan.argtypes import positive_float
from titan.net.security import is_loopback

DESCRIPTION = ("Serve Titan to an AI client over the Model Context Protocol: tools to submit jobs and DAGs, "
               "wait for them, read logs, approve gates and use TitanStore, through the master at "
               "TITAN_HOST/TITAN_PORT with TITAN_KEYS. Speaks stdio unless --http is given.")
MISSING_EXTRA = "needs the MCP SDK, which is not installed: pip install 'titan-scheduler[mcp]'"
MCP_PATH = "/mcp"
TOKEN_ENV = "TITAN_MCP_TOKEN"


def add_commands(commands) -> None:
    """Add `mcp` to the `titan` command's subparsers."""
    parser = commands.add_parser("mcp", help="serve Titan to AI clients over MCP (stdio or HTTP)",
                                 description=DESCRIPTION)
    add_options(parser)
    parser.set_defaults(run=run_server)


def add_options(parser: argparse.ArgumentParser) -> None:
    from titan.cli.common import add_master_options   # here: titan.cli imports this module

    add_master_options(parser, timeout=False)
    parser.add_argument("--timeout", type=positive_float, default=defaults.MCP_CLIENT_TIMEOUT_S,
                        help="seconds a tool waits for the master to answer (default %(default)s)")
    parser.add_argument("--http", metavar="HOST:PORT", type=http_address, default=None,
                        help=f"serve streamable HTTP at http://HOST:PORT{MCP_PATH} instead of stdio (PORT alone: "
                             f"{defaults.DEFAULT_BIND_HOST})")
    parser.add_argument("--token-file", default=None,
                        help=f"with --http: a file holding the token every request must bring as 'Authorization: "
                             f"Bearer TOKEN' (default: {TOKEN_ENV}, else none)")
    parser.add_argument("--insecure", action="store_true",
                        help="allow --http on a non-loopback address without keys and a token (trusted networks only)")


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m titan.mcp", description=DESCRIPTION)
    add_options(parser)
    args = parser.parse_args(argv)
    try:
        return run_server(args)
    except ValueError as exc:   # bad input, said in one line as `titan mcp` says it
        print(f"titan mcp: {exc}", file=sys.stderr)
        return 2


def http_address(text: str) -> Tuple[str, int]:
    host, _, port = text.rpartition(":")
    host = host.strip("[]") or defaults.DEFAULT_BIND_HOST
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT (or PORT) with a port from 1 to 65535, got {text!r}")
    return host, int(port)


def run_server(args) -> int:
    from titan.cli.common import note

    token = http_token(args)
    if args.http and not (args.insecure or is_loopback(args.http[0]) or (_has_keys(args) and token)):
        print(refusal_to_serve(args.http[0]), file=sys.stderr)   # before anything listens
        return 2
    try:
        from titan.mcp import http_transport
        from titan.mcp.server import build_server
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] not in ("mcp", "mcp_types"):
            raise
        note("mcp", MISSING_EXTRA)
        return 2
    from titan_sdk import TitanClient

    with TitanClient(host=args.host, port=args.port, keys=args.keys, timeout=args.timeout) as client:
        server = build_server(client)
        master = f"the master at {client.host}:{client.port}"
        if args.http is None:
            note("mcp", f"serving MCP on stdio for {master}")
            server.run("stdio")
        else:
            host, port = args.http
            login = "a bearer token" if token else "no token"
            note("mcp", f"serving MCP (streamable HTTP, {login}) at http://{_url_host(host)}:{port}{MCP_PATH} "
                        f"for {master}")
            http_transport.serve(server, host, port, MCP_PATH, token)
    return 0


def http_token(args) -> Optional[str]:
    """The bearer token HTTP requests must bring: --token-file's content, else TITAN_MCP_TOKEN."""
    if args.token_file is None:
        return os.environ.get(TOKEN_ENV) or None
    try:
        with open(args.token_file, encoding="utf-8") as handle:
            token = handle.read().strip()
    except OSError as exc:
        raise ValueError(f"cannot read --token-file {args.token_file}: {exc.strerror or exc}") from None
    if not token:
        raise ValueError(f"--token-file {args.token_file} is empty")
    return token


def refusal_to_serve(host: str) -> str:
    """The master's rule (titan/net/security.refusal_to_bind) for the MCP server's HTTP address; as the
    HTTP side has no keys of its own, a token stands in for them there."""
    return (f"titan mcp: refusing to serve MCP over HTTP on {host} without keys and a token: anyone who can "
            "reach it could run code on every worker.\n"
            "  Use keys (`titan keys init DIR` for the master and workers, `titan keys add-client NAME` for this "
            f"server: --keys BUNDLE or TITAN_KEYS) and a token (--token-file FILE or {TOKEN_ENV}) that every "
            "client sends as 'Authorization: Bearer TOKEN';\n"
            "  or, on a network you trust completely, pass --insecure to serve without them.")


def _has_keys(args) -> bool:
    return bool(args.keys or os.environ.get("TITAN_KEYS"))


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
