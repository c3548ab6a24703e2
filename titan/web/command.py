"""`titan dashboard` (wired into titan/cli/parser.py through add_commands) and `python -m titan.web`."""

from __future__ import annotations

import argparse
import signal
import sys
from typing import List, Optional

from titan import defaults, log_level

DESCRIPTION = ("Serve a live web page of the cluster (workers with their host's CPU and memory, queues, "
               "every DAG as a graph with its timeline, a searchable job table, job logs, Approve/Reject, "
               "Cancel and Retry buttons) and Prometheus metrics at /metrics. It follows the master's "
               "event stream from a process of its own.")


def add_commands(commands) -> None:
    """Add `dashboard` to the `titan` command's subparsers."""
    dashboard = commands.add_parser("dashboard", help="serve a live web dashboard and /metrics",
                                    description=DESCRIPTION)
    add_options(dashboard)
    dashboard.set_defaults(run=run_dashboard)


def add_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, default=defaults.DASHBOARD_PORT,
                        help="web port (default %(default)s; 0 picks a free one)")
    parser.add_argument("--host", default=defaults.DEFAULT_BIND_HOST,
                        help="address to serve on (default %(default)s: this machine only)")
    parser.add_argument("--master-host", default=None,
                        help="master host, or several sharing a journal: H1,H2 or H1:P,H2:P, and the dashboard "
                             "follows the leader (default: TITAN_HOST, else localhost)")
    parser.add_argument("--master-port", type=int, default=None,
                        help="master base port (default: TITAN_PORT, else 9090)")
    parser.add_argument("--keys", default=None, metavar="DIR",
                        help="a client key bundle for a keyed master (default: TITAN_KEYS)")
    log_level.add_option(parser)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m titan.web", description=DESCRIPTION)
    add_options(parser)
    return run_dashboard(parser.parse_args(argv))


def run_dashboard(args) -> int:
    from titan.net.security import is_loopback
    from titan.web.server import DashboardServer
    from titan_sdk import TitanClient

    log_level.configure(args.log_level, "dashboard")
    client = TitanClient(host=args.master_host, port=args.master_port, keys=args.keys,
                         timeout=defaults.DASHBOARD_CLIENT_TIMEOUT_S)
    try:
        server = DashboardServer(client, args.host, args.port)
    except OSError as exc:
        client.close()
        print(f"titan dashboard: cannot serve on {args.host}:{args.port}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    if not is_loopback(args.host):
        print(f"titan dashboard: warning: serving on {args.host}; anyone who reaches it can watch the cluster "
              "and read job logs (acting on it needs the token below)", file=sys.stderr)
    signal.signal(signal.SIGTERM, _exit_on_signal)
    server.start_feed()
    # Say where it serves once it follows the master, so what happens after that line is on the page.
    if not server.feed.following.wait(defaults.DASHBOARD_CLIENT_TIMEOUT_S + 1):
        print(f"titan dashboard: the master at {client.host}:{client.port} does not answer yet; the page says "
              "so until it does", file=sys.stderr, flush=True)
    print(f"Titan dashboard on http://{_url_host(args.host)}:{server.port}/?token={server.token} (metrics at "
          f"/metrics), following the master at {client.host}:{client.port}; Ctrl-C stops it", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
        client.close()
    print("titan dashboard: stopped", flush=True)
    return 0


def _exit_on_signal(signum, frame) -> None:
    raise KeyboardInterrupt


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
