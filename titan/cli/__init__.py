"""The `titan` command (`titan.cli:main`): one module per group of subcommands, wired in parser.py."""

from titan.cli.parser import main

__all__ = ["main"]
