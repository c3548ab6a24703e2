"""The worker process: its poll loop (loop.py), settings (config.py), how a job's process is run
(executor.py), the warm Python that forks `.py` jobs (forkserver.py), the small process that starts
every other job (launcher.py) and the project archives it keeps (archive_cache.py). `python -m
titan.worker` runs command.main.

The names below load on first use: the launcher imports a few of this package's modules and must stay
small (forking it is what each job it starts costs), so importing the package loads nothing else."""

from __future__ import annotations

import importlib

__all__ = ["Worker", "WorkerConfig", "main"]
_HOMES = {"Worker": "titan.worker.loop", "WorkerConfig": "titan.worker.config", "main": "titan.worker.command"}


def __getattr__(name: str):
    if name not in _HOMES:
        raise AttributeError(f"module 'titan.worker' has no attribute {name!r}")
    return getattr(importlib.import_module(_HOMES[name]), name)
