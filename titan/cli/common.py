"""What the `titan` subcommands share: master options, the client, and output that is rich on a terminal
and plain, line-oriented text anywhere else (pipes, files, tests)."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import sys
from typing import List, Optional, Sequence

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from titan import defaults
from titan.argtypes import positive_float
from titan.net import security


class CommandError(Exception):
    """A command that cannot do what was asked; main() prints the message as one line."""

    def __init__(self, message: str, exit_code: int = 1):
        super().__init__(message)
        self.exit_code = exit_code


def stop_on_ctrl_c() -> None:
    """Ctrl-C stops a long-running command even when it was started where SIGINT is ignored (`nohup ...
    &`, or `cmd &` in a script: shells start background jobs so)."""
    signal.signal(signal.SIGINT, signal.default_int_handler)


def console() -> Console:
    """A console on stdout, made when needed so tests that swap sys.stdout see its output."""
    return Console(file=sys.stdout, highlight=False)


MASTER_TIMEOUT_HELP = ("seconds to keep trying to reach the master before giving up (default %(default)s); "
                       "after about 2 s without an answer it says so")


def add_master_options(parser: argparse.ArgumentParser, timeout: bool = True) -> None:
    """--host, --port, --keys; and --timeout meaning MASTER_TIMEOUT_HELP, unless the command gives its
    own --timeout a meaning of its own (timeout=False)."""
    parser.add_argument("--host", default=None, help="master host, or several sharing a journal: H1,H2 "
                                                      "(default: TITAN_HOST, else localhost)")
    parser.add_argument("--master", dest="host", metavar="HOST:PORT[,HOST:PORT]",
                        help="the master, or each master sharing a journal (the client follows the leader)")
    parser.add_argument("--port", type=int, default=None, help="master base port (default: TITAN_PORT, else 9090)")
    parser.add_argument("--keys", default=None,
                        help="client key bundle, for a master that requires keys (default: TITAN_KEYS)")
    if timeout:
        parser.add_argument("--timeout", type=positive_float, default=defaults.CLIENT_TIMEOUT_S,
                            help=MASTER_TIMEOUT_HELP)


def connect(args, timeout: Optional[float] = None):
    """A client that gives up on the master after `timeout` (default: the command's --timeout, else 30 s)
    and meanwhile says on stderr that it is not answering."""
    from titan_sdk import TitanClient

    timeout = timeout or getattr(args, "timeout", None) or defaults.CLIENT_TIMEOUT_S
    client = TitanClient(host=args.host, port=args.port, keys=args.keys, timeout=timeout)
    client.on_no_answer = NoAnswerNotice(args.command, client, timeout, with_keys=bool(
        args.keys or os.environ.get(security.KEYS_ENV)))
    return client


class NoAnswerNotice:
    """Says on stderr that the master is not answering: at the client's first retry (about 2 s), then every
    CLI_NO_ANSWER_REPEAT_S while it keeps trying, so a wrong port or a missing key is not 30 s of silence."""

    def __init__(self, command: str, client, timeout: float, with_keys: bool):
        self.command, self.timeout, self.with_keys = command, timeout, with_keys
        self.where = f"{client.host}:{client.port}"
        self.last_waited, self.next_at = 0.0, 0.0

    def __call__(self, waited: float) -> None:
        if waited < self.last_waited:   # another request: the master had answered the one before
            self.next_at = 0.0
        self.last_waited = waited
        if waited < self.next_at:
            return
        if self.next_at == 0.0:
            keys = ("with keys, a master answers only the keys in its clients/ folder" if self.with_keys else
                    "a master started with --keys answers only known keys: give --keys or set TITAN_KEYS")
            note(self.command, f"the master at {self.where} is not answering (is it running, on that port? {keys}); "
                               f"still trying, for up to {self.timeout:g}s (--timeout)")
        else:
            note(self.command, f"still no answer from the master at {self.where} after {waited:.0f}s; "
                               f"giving up at {self.timeout:g}s")
        self.next_at = waited + defaults.CLI_NO_ANSWER_REPEAT_S


# ----------------------------------------------------------------- tables

class Section:
    """A titled table that renders as a rich Table on a terminal, else as aligned plain columns."""

    def __init__(self, title: str, columns: Sequence[str], rows: List[Sequence]):
        self.title, self.columns, self.rows = title, list(columns), [[cell(v) for v in r] for r in rows]

    def rich(self):
        """A table; a one-row section as one line of `column value` pairs, to leave room on the screen."""
        if len(self.rows) == 1 and self.title:
            pairs = [f"[bold]{column}[/] {value}" for column, value in zip(self.columns, self.rows[0])]
            return Text.from_markup(f"[italic]{self.title}:[/] " + "  ".join(pairs))
        table = Table(title=self.title or None, title_justify="left", box=box.SIMPLE_HEAD, show_edge=False,
                      expand=False)
        for column in self.columns:
            table.add_column(column)
        for row in self.rows:
            table.add_row(*row)
        return table

    def plain(self) -> str:
        """Header then one line per row; every cell but the last is one word, so `split()` parses it."""
        lines = [[c.upper() for c in self.columns], *[[word(v) for v in r[:-1]] + [r[-1]] for r in self.rows]]
        widths = [max(len(line[i]) for line in lines) for i in range(len(self.columns) - 1)]
        text = [f"# {self.title}"] if self.title else []
        text += ["  ".join([*(v.ljust(w) for v, w in zip(line, widths)), line[-1]]).rstrip() for line in lines]
        return "\n".join(text)


def show(sections: Sequence[Section]) -> None:
    out = console()
    if out.is_terminal:
        for section in sections:
            out.print(section.rich())
        return
    print("\n\n".join(section.plain() for section in sections), flush=True)


def cell(value) -> str:
    if value is None or value == "" or value == []:
        return "-"
    if isinstance(value, float):
        return f"{value:.2f}"
    if isinstance(value, (list, tuple, set)):
        return ",".join(str(v) for v in value)
    return str(value)


def word(text: str) -> str:
    return text.replace(" ", "_") if text else "-"


def fields_line(event: dict, names: Sequence[str]) -> str:
    """key=value for each of `names` the event has, values quoted like a shell would, so shlex.split
    parses the line back."""
    return " ".join(f"{name}={shlex.quote(str(event[name]))}" for name in names
                    if event.get(name) not in (None, ""))


def add_json_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true",
                        help="print what the master answered as JSON (for scripts and jq), not a table")


def print_json(value) -> int:
    print(json.dumps(value, indent=2, sort_keys=True), flush=True)
    return 0


def note(command: str, message: str) -> None:
    print(f"titan {command}: {message}", file=sys.stderr, flush=True)
