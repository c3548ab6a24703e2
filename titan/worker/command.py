"""`python -m titan.worker --cap GPU`: parse the flags, run the worker until a signal."""

from __future__ import annotations

import logging
import signal
import sys

from titan.net import security
from titan.worker.config import NULL_EXECUTOR, parse_args
from titan.worker.forkserver import PreloadError
from titan.worker.loop import Worker


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s worker %(levelname)s %(message)s")
    config = parse_args(argv)
    try:
        worker = Worker(config)
    except (security.KeyFileError, PreloadError) as exc:
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
