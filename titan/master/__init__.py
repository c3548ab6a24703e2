"""The master process: its poll loop (loop.py), settings (config.py), request handlers (requests.py), reply
cache (replies.py), key checks (gatekeeper.py), stored files (artifacts.py) and journal (journal.py, with
sqlite_journal.py behind it). `python -m titan.master` runs command.main."""

from titan.master.command import main
from titan.master.config import MasterConfig
from titan.master.loop import Master

__all__ = ["Master", "MasterConfig", "main"]
