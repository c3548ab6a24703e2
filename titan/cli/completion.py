"""Shell completion of the `titan` command's subcommands and flags, through argcomplete (the optional
`completion` extra): `titan completion bash|zsh|fish` prints the script to load, and a shell asking for
completions is answered before anything else runs."""

from __future__ import annotations

import os

from titan.cli.common import CommandError

EXTRA = "pip install 'titan-scheduler[completion]'"
SHELLS = ("bash", "zsh", "fish")


def add_commands(commands) -> None:
    completion = commands.add_parser(
        "completion", help="print the script that lets your shell complete titan's commands and flags",
        description='Print the completion script for SHELL. Load it from your shell\'s start-up file: bash '
                    '(~/.bashrc) and zsh (~/.zshrc): eval "$(titan completion bash)" (or zsh); fish: titan '
                    f"completion fish | source. Needs the completion extra: {EXTRA}.")
    completion.add_argument("shell", nargs="?", choices=SHELLS, default="bash", help="default %(default)s")
    completion.set_defaults(run=run_completion)


def answer_the_shell(parser) -> None:
    """When a shell asks for completions (argcomplete sets _ARGCOMPLETE), answer and exit; otherwise
    return at once, importing nothing."""
    if "_ARGCOMPLETE" not in os.environ:
        return
    try:
        import argcomplete
    except ImportError:
        return
    argcomplete.autocomplete(parser)


def run_completion(args) -> int:
    try:
        import argcomplete
    except ImportError:
        raise CommandError(f"shell completion needs the completion extra: {EXTRA}", exit_code=2) from None
    print(argcomplete.shellcode(["titan"], shell=args.shell))
    return 0
