"""The `titan` command's parser and exit codes; each subcommand lives in its own module of this package
(local: up and demo; pipelines: run, approve, reject; jobs; watch; files; keys; titan.web: dashboard).

Exit codes: 0 done, 1 a job did not complete or the master refused or did not answer, 2 a usage error
or bad input. Errors are one line on stderr, `titan COMMAND: what went wrong`."""

from __future__ import annotations

import argparse
from typing import List, Optional

import titan
from titan.cli import completion, files, history, jobs, journal, keys, local, pipelines, processes, watch
from titan.cli.common import CommandError, note
from titan.core.errors import TitanError
from titan.mcp import add_commands as add_mcp_commands
from titan.web import add_commands as add_dashboard_commands


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    completion.answer_the_shell(parser)
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        parser.print_help()
        return 2
    try:
        return args.run(args)
    except KeyboardInterrupt:
        return 130
    except CommandError as exc:
        return _say(args, str(exc), exc.exit_code)
    except (FileNotFoundError, ValueError) as exc:   # bad input: a pipeline, a DAG, a path, a gate
        return _say(args, str(exc), 2)
    except TitanError as exc:                        # the master refused, or did not answer
        return _say(args, exc.message, 1)
    except Exception as exc:  # one readable line, not a traceback
        return _say(args, f"{type(exc).__name__}: {exc}", 1)


def _say(args, message: str, exit_code: int) -> int:
    note(args.command, message)
    return exit_code


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="titan", description="Titan, a cluster job scheduler on ZeroMQ.")
    parser.add_argument("--version", action="version", version=f"titan {titan.__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in (local, pipelines, jobs, history, watch, files):
        module.add_commands(commands)
    add_dashboard_commands(commands)
    keys.add_commands(commands)
    journal.add_commands(commands)
    processes.add_commands(commands)
    completion.add_commands(commands)
    add_mcp_commands(commands)
    return parser
