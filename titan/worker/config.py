"""The worker's settings: `WorkerConfig`, and the command-line flags that fill it."""

from __future__ import annotations

import argparse
import os
import socket as host_socket
from dataclasses import dataclass, field
from typing import List, Optional

from titan import defaults, log_level
from titan.net import security

FORK_EXECUTOR = "fork"        # .py jobs forked from a warm fork server; other jobs in new processes
PROCESS_EXECUTOR = "process"  # every job in a new process (a fresh interpreter for .py)
NULL_EXECUTOR = "null"


@dataclass
class WorkerConfig:
    master_host: str = defaults.DEFAULT_HOST
    master_port: int = defaults.DEFAULT_PORT
    capabilities: List[str] = field(default_factory=list)
    slots: int = 0
    name: str = ""
    heartbeat_interval: float = defaults.HEARTBEAT_INTERVAL_S
    master_dead_after: float = defaults.WORKER_DEAD_AFTER_S
    work_dir: Optional[str] = None
    # "null" reports each job finished without running anything: for benchmarks of the scheduler alone.
    executor: str = FORK_EXECUTOR
    keys: Optional[str] = None   # a worker key bundle, or the key directory on the master's machine
    log_level: Optional[str] = None   # None: TITAN_LOG_LEVEL, else INFO

    def __post_init__(self):
        self.slots = self.slots or os.cpu_count() or 1
        self.name = self.name or f"{host_socket.gethostname()}-{os.getpid()}"


def parse_master(address: Optional[str]):
    if address:
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit():
            raise SystemExit(f"titan worker: --master must be HOST:PORT, got {address!r}")
        return host, int(port)
    return (os.environ.get("TITAN_HOST", defaults.DEFAULT_HOST),
            int(os.environ.get("TITAN_PORT", defaults.DEFAULT_PORT)))


DESCRIPTION = "Run a Titan worker."


def parse_args(argv=None) -> WorkerConfig:
    parser = argparse.ArgumentParser(prog="python -m titan.worker", description=DESCRIPTION)
    add_options(parser)
    return config_from(parser.parse_args(argv))


def add_options(parser: argparse.ArgumentParser) -> None:
    """The worker's flags, for `python -m titan.worker` and `titan worker` alike."""
    parser.add_argument("--master", help="HOST:PORT of the master (default: TITAN_HOST/TITAN_PORT, "
                                         f"else {defaults.DEFAULT_HOST}:{defaults.DEFAULT_PORT})")
    parser.add_argument("--cap", action="append", default=[], metavar="TAG",
                        help="a capability, e.g. GPU; repeat or comma-separate (GENERAL is implied)")
    parser.add_argument("--slots", type=int, default=0, help="jobs run at once (default: number of CPUs)")
    parser.add_argument("--name", default="", help="name shown in status and events (default: host-pid)")
    parser.add_argument("--heartbeat-interval", type=float, default=defaults.HEARTBEAT_INTERVAL_S)
    parser.add_argument("--master-dead-after", type=float, default=defaults.WORKER_DEAD_AFTER_S)
    parser.add_argument("--work-dir", default=None, help="where job workspaces are made (default: a temp dir)")
    parser.add_argument("--executor", choices=[FORK_EXECUTOR, PROCESS_EXECUTOR, NULL_EXECUTOR],
                        default=FORK_EXECUTOR,
                        help="fork (default): .py jobs forked from a warm Python; process: a fresh "
                             "interpreter per job; null: benchmarks only, jobs reported done without running")
    parser.add_argument("--keys", default=None, metavar="DIR",
                        help=f"this worker's key bundle (titan keys add-worker), or the key directory on the "
                             f"master's machine (default: ${security.KEYS_ENV})")
    log_level.add_option(parser)


def config_from(args: argparse.Namespace) -> WorkerConfig:
    host, port = parse_master(args.master)
    caps = [c.strip() for item in args.cap for c in item.split(",") if c.strip()]
    return WorkerConfig(master_host=host, master_port=port, capabilities=caps, slots=args.slots,
                        name=args.name, heartbeat_interval=args.heartbeat_interval,
                        master_dead_after=args.master_dead_after, work_dir=args.work_dir,
                        executor=args.executor, keys=args.keys, log_level=args.log_level)
