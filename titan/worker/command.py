"""`python -m titan.worker --cap GPU`: parse the flags, run the worker until a signal."""

from __future__ import annotations

import signal
import sys

from titan import log_level
from titan.net import security
from titan.worker.config import NULL_EXECUTOR, WorkerConfig, parse_args
from titan.worker.forkserver import StartError
from titan.worker.loop import Worker


def main(argv=None) -> int:
    return serve(parse_args(argv))


def serve(config: WorkerConfig) -> int:
    """Run a worker with these settings until SIGINT or SIGTERM (`python -m titan.worker`, `titan worker`)."""
    log_level.configure(config.log_level, "worker")
    try:
        worker = Worker(config)
    except (security.KeyFileError, StartError) as exc:
        print(f"titan worker: {exc}", file=sys.stderr)
        return 2
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: worker.stop())
    caps = ", ".join(["GENERAL", *config.capabilities])
    if config.executor == NULL_EXECUTOR:
        print("WARNING: null executor (benchmarks only): jobs are reported done and never run", flush=True)
    access = "CURVE" if worker.identity else "no keys"
    print(f"Titan worker {config.name} ({caps}; {config.slots} slots) -> "
          f"{config.master_host}:{config.master_port} ({access})", flush=True)
    worker.run()
    print(f"Titan worker {config.name} stopped.", flush=True)
    return 0
