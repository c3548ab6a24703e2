"""The worker's settings: `WorkerConfig`, and the command-line flags that fill it."""

from __future__ import annotations

import argparse
import os
import socket as host_socket
from dataclasses import dataclass, field
from typing import List, Optional

from titan import defaults, log_level
from titan.core.jobs import ISOLATIONS
from titan.net import security

FORK_EXECUTOR = "fork"        # .py jobs forked from a warm fork server; other jobs in new processes
PROCESS_EXECUTOR = "process"  # every job in a new process (a fresh interpreter for .py)
NULL_EXECUTOR = "null"
DEFAULT_ISOLATION = "fork"


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
    isolation: str = DEFAULT_ISOLATION   # how a .py job that does not choose runs (one of ISOLATIONS)
    preload: List[str] = field(default_factory=list)   # modules the fork server and pool import first
    pool_max_jobs: int = defaults.POOL_MAX_JOBS
    pool_max_rss_mb: int = defaults.POOL_MAX_RSS_MB

    def __post_init__(self):
        self.slots = self.slots or os.cpu_count() or 1
        self.name = self.name or f"{host_socket.gethostname()}-{os.getpid()}"


def parse_master(address: Optional[str]):
    """(host, port) from --master HOST:PORT; several masters sharing a journal, HOST:PORT,HOST:PORT, are
    kept whole as the host (titan.net.addresses), with the first one's port."""
    if address:
        entries = [entry.strip() for entry in address.split(",")]
        for entry in entries:
            host, _, port = entry.rpartition(":")
            if not host or not port.isdigit():
                raise SystemExit(f"titan worker: --master must be HOST:PORT (or several, comma-separated), "
                                 f"got {address!r}")
        if len(entries) > 1:
            return ",".join(entries), int(entries[0].rpartition(":")[2])
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
    parser.add_argument("--master", help="HOST:PORT of the master, or of each master sharing a journal "
                                         "(H1:P,H2:P) (default: TITAN_HOST/TITAN_PORT, "
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
    _isolation_flags(parser)
    log_level.add_option(parser)


def config_from(args: argparse.Namespace) -> WorkerConfig:
    host, port = parse_master(args.master)
    caps = [c.strip() for item in args.cap for c in item.split(",") if c.strip()]
    return WorkerConfig(master_host=host, master_port=port, capabilities=caps, slots=args.slots,
                        name=args.name, heartbeat_interval=args.heartbeat_interval,
                        master_dead_after=args.master_dead_after, work_dir=args.work_dir,
                        executor=args.executor, keys=args.keys, isolation=args.isolation,
                        preload=[m.strip() for item in args.preload for m in item.split(",") if m.strip()],
                        pool_max_jobs=args.pool_max_jobs, pool_max_rss_mb=args.pool_max_rss,
                        log_level=args.log_level)


def _isolation_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--isolation", choices=ISOLATIONS, default=DEFAULT_ISOLATION,
                        help=f"how a .py job that does not choose runs (default {DEFAULT_ISOLATION}): pool, in a "
                             "warm interpreter that runs jobs one after another; fork, in a child forked from "
                             "a warm interpreter; process, in a fresh interpreter")
    parser.add_argument("--preload", action="append", default=[], metavar="MODULE[,MODULE]",
                        help="import these modules before any job, so fork and pool jobs start with them "
                             "(e.g. numpy,pandas)")
    parser.add_argument("--pool-max-jobs", type=_not_negative, default=defaults.POOL_MAX_JOBS, metavar="N",
                        help=f"a pool interpreter is replaced after N jobs (0: never; default {defaults.POOL_MAX_JOBS})")
    parser.add_argument("--pool-max-rss", type=_not_negative, default=defaults.POOL_MAX_RSS_MB, metavar="MB",
                        help="a pool interpreter is replaced once its memory passes MB megabytes "
                             f"(0: no limit; default {defaults.POOL_MAX_RSS_MB})")


def _not_negative(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected 0 or more, got {value}")
    return value
