"""The worker process: its poll loop (loop.py), settings (config.py), how a job's process is run
(executor.py), the warm Python that forks `.py` jobs (forkserver.py) and the project archives it keeps
(archive_cache.py). `python -m titan.worker` runs command.main."""

from titan.worker.command import main
from titan.worker.config import WorkerConfig
from titan.worker.loop import Worker

__all__ = ["Worker", "WorkerConfig", "main"]
