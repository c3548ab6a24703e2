"""What the `titan` subcommands share: master options, the client, and output that is rich on a terminal
and plain, line-oriented text anywhere else (pipes, files, tests)."""

from __future__ import annotations

import argparse
import shlex
import signal
import sys
from typing import List, Sequence

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from titan import defaults
from titan.argtypes import positive_float


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


def add_master_options(parser: argparse.ArgumentParser, timeout: bool = True) -> None:
    parser.add_argument("--host", default=None, help="master host (default: TITAN_HOST, else localhost)")
    parser.add_argument("--port", type=int, default=None, help="master base port (default: TITAN_PORT, else 9090)")
    parser.add_argument("--keys", default=None,
                        help="client key bundle, for a master that requires keys (default: TITAN_KEYS)")
    if timeout:
        parser.add_argument("--timeout", type=positive_float, default=defaults.CLIENT_TIMEOUT_S,
                            help="seconds to wait for the master to answer (default %(default)s)")


def connect(args):
    from titan_sdk import TitanClient

    return TitanClient(host=args.host, port=args.port, keys=args.keys,
                       timeout=getattr(args, "timeout", None) or defaults.CLIENT_TIMEOUT_S)


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


def note(command: str, message: str) -> None:
    print(f"titan {command}: {message}", file=sys.stderr, flush=True)
