"""The web dashboard and Prometheus metrics: `titan dashboard` or `python -m titan.web`.

A process of its own that follows the master's event stream, so the master's loop does no web work.
"""

from titan.web.command import add_commands, main

__all__ = ["add_commands", "main"]
