"""The master's settings: `MasterConfig`, and the command-line flags that fill it."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import Optional

from titan import defaults, log_level
from titan.argtypes import keep_duration, non_negative_int, positive
from titan.core.limits import Limits


@dataclass
class MasterConfig:
    host: str = defaults.DEFAULT_BIND_HOST
    port: int = defaults.DEFAULT_PORT
    data_dir: Optional[str] = None
    journal: Optional[str] = None       # postgresql://... : a journal shared with standby masters
    lease_timeout: float = defaults.LEASE_TIMEOUT_S
    max_message_bytes: int = defaults.MAX_MESSAGE_BYTES
    heartbeat_interval: float = defaults.HEARTBEAT_INTERVAL_S
    worker_dead_after: float = defaults.WORKER_DEAD_AFTER_S
    retry_backoff: float = defaults.RETRY_BACKOFF_S
    retry_backoff_max: float = defaults.RETRY_BACKOFF_MAX_S
    max_worker_losses: int = defaults.MAX_WORKER_LOSSES
    keys: Optional[str] = None          # key directory (titan keys init): CURVE on every socket
    insecure: bool = False              # allow a non-loopback address without keys
    limits: Limits = field(default_factory=Limits)
    max_log_repeats: int = defaults.MAX_LOG_REPEATS   # lines of one kind per minute in the master's log
    log_level: Optional[str] = None     # None: TITAN_LOG_LEVEL, else INFO
    metrics_port: Optional[int] = None  # serve Prometheus /metrics here (0: any free port); None: not at all
    metrics_host: str = defaults.DEFAULT_BIND_HOST
    keep_completed: Optional[float] = defaults.KEEP_COMPLETED_S   # None: for ever
    keep_failed: Optional[float] = defaults.KEEP_FAILED_S
    keep_max_jobs: Optional[int] = defaults.KEEP_MAX_JOBS
    artifact_grace: Optional[float] = defaults.ARTIFACT_GRACE_S   # None: unreferenced blobs kept for ever


DESCRIPTION = "Run a Titan master."


def parse_args(argv=None) -> MasterConfig:
    parser = argparse.ArgumentParser(prog="python -m titan.master", description=DESCRIPTION)
    add_options(parser)
    return config_from(parser.parse_args(argv))


def add_options(parser: argparse.ArgumentParser) -> None:
    """The master's flags, for `python -m titan.master` and `titan master` alike."""
    parser.add_argument("--host", default=defaults.DEFAULT_BIND_HOST, help="address to bind (default %(default)s)")
    parser.add_argument("--port", type=int, default=defaults.DEFAULT_PORT,
                        help="base port: clients P, workers P+1, events P+2, store P+3 (default %(default)s)")
    parser.add_argument("--data-dir", default=None,
                        help="directory for the durable journal (titan.db); without it state is in memory only")
    parser.add_argument("--journal", default=None, metavar="postgresql://USER@HOST/DB", type=_postgres_url,
                        help="keep the journal (and artifacts) in PostgreSQL instead of --data-dir: any number "
                             "of masters with the same URL, one leads and the others wait to take over "
                             "(needs titan-scheduler[postgres])")
    parser.add_argument("--lease-timeout", type=positive(float), default=defaults.LEASE_TIMEOUT_S, metavar="S",
                        help="with --journal: a standby takes over once the leader has not renewed its lease "
                             "for S seconds (default %(default)s)")
    parser.add_argument("--max-message-bytes", type=int, default=defaults.MAX_MESSAGE_BYTES)
    parser.add_argument("--heartbeat-interval", type=float, default=defaults.HEARTBEAT_INTERVAL_S,
                        help="seconds between heartbeats (default %(default)s)")
    parser.add_argument("--worker-dead-after", type=float, default=defaults.WORKER_DEAD_AFTER_S,
                        help="seconds of silence after which a worker is declared dead (default %(default)s)")
    parser.add_argument("--retry-backoff", type=float, default=defaults.RETRY_BACKOFF_S,
                        help="seconds before a failed job's first retry, doubling after (default %(default)s)")
    parser.add_argument("--retry-backoff-max", type=float, default=defaults.RETRY_BACKOFF_MAX_S)
    parser.add_argument("--max-worker-losses", type=positive(int), default=defaults.MAX_WORKER_LOSSES, metavar="N",
                        help="a job is FAILED once workers died N times while running it, instead of "
                             "being run again (default %(default)s)")
    parser.add_argument("--keys", default=None, metavar="DIR",
                        help="key directory made by `titan keys init`: CURVE encryption and authentication "
                             "on every socket, only known keys let in")
    parser.add_argument("--insecure", action="store_true",
                        help="allow listening on a non-loopback address without --keys (trusted networks only)")
    parser.add_argument("--max-log-repeats", type=int, default=defaults.MAX_LOG_REPEATS, metavar="N",
                        help="at most N lines of one kind a minute in the master's log, the rest counted "
                             "(default %(default)s; 0: no limit)")
    parser.add_argument("--metrics-port", type=int, default=None, metavar="PORT",
                        help="also serve Prometheus metrics at http://HOST:PORT/metrics (default: not served)")
    parser.add_argument("--metrics-host", default=defaults.DEFAULT_BIND_HOST,
                        help="address for --metrics-port (default %(default)s; another needs --keys or "
                             "--insecure, as --host does)")
    add_limit_options(parser)
    add_retention_options(parser)
    log_level.add_option(parser)


def add_retention_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--keep-completed", type=keep_duration, default=defaults.KEEP_COMPLETED_S, metavar="AGE",
                        help="forget a COMPLETED job this long after it ended: 30s, 10m, 1d, or 'forever' "
                             "(default 1d)")
    parser.add_argument("--keep-failed", type=keep_duration, default=defaults.KEEP_FAILED_S, metavar="AGE",
                        help="the same for a FAILED or CANCELLED job (default 7d)")
    parser.add_argument("--keep-max-jobs", type=non_negative_int, default=defaults.KEEP_MAX_JOBS, metavar="N",
                        help="at most N ended jobs kept, the oldest forgotten first (default %(default)s; "
                             "0: no bound)")
    parser.add_argument("--artifact-grace", type=keep_duration, default=defaults.ARTIFACT_GRACE_S, metavar="AGE",
                        help="remove an artifact or archive content once no name points at it and no job kept "
                             "runs from it for this long: 30s, 10m, 1d, or 'forever' (default 1h)")


def config_from(args: argparse.Namespace) -> MasterConfig:
    limits = Limits(jobs_per_dag=args.max_jobs_per_dag, script_bytes=args.max_script_bytes,
                    submits_per_second=args.max_submits_per_second, store_value_bytes=args.max_store_value_bytes,
                    store_keys=args.max_store_keys, log_bytes=args.max_log_bytes)
    if args.journal and args.data_dir:
        raise SystemExit("titan master: give --journal or --data-dir, not both (--journal keeps everything "
                         "in PostgreSQL)")
    return MasterConfig(host=args.host, port=args.port, data_dir=args.data_dir, journal=args.journal,
                        lease_timeout=args.lease_timeout,
                        max_message_bytes=args.max_message_bytes, heartbeat_interval=args.heartbeat_interval,
                        worker_dead_after=args.worker_dead_after, retry_backoff=args.retry_backoff,
                        retry_backoff_max=args.retry_backoff_max, max_worker_losses=args.max_worker_losses,
                        keys=args.keys, insecure=args.insecure,
                        max_log_repeats=args.max_log_repeats, limits=limits, log_level=args.log_level,
                        metrics_port=args.metrics_port, metrics_host=args.metrics_host,
                        keep_completed=args.keep_completed, keep_failed=args.keep_failed,
                        keep_max_jobs=args.keep_max_jobs or None, artifact_grace=args.artifact_grace)


def _postgres_url(text: str) -> str:
    if not text.startswith(("postgresql://", "postgres://")):
        raise argparse.ArgumentTypeError(f"expected a postgresql:// URL, got {text[:80]!r}")
    return text


def add_limit_options(parser: argparse.ArgumentParser) -> None:
    for flag, kind, default, what in (
            ("--max-jobs-per-dag", int, defaults.MAX_JOBS_PER_DAG, "jobs in one submission"),
            ("--max-script-bytes", int, defaults.MAX_SCRIPT_BYTES, "bytes of one job's script or archive"),
            ("--max-store-value-bytes", int, defaults.MAX_STORE_VALUE_BYTES, "bytes of one TitanStore value"),
            ("--max-store-keys", int, defaults.MAX_STORE_KEYS, "keys in TitanStore"),
            ("--max-log-bytes", int, defaults.MAX_LOG_BYTES_PER_JOB,
             "bytes of output kept per job (older output is dropped, with a marker)"),
            ("--max-submits-per-second", float, defaults.MAX_SUBMITS_PER_SECOND,
             "submissions a second from one client (one key, or one connection without keys)")):
        parser.add_argument(flag, type=positive(kind), default=default,
                            help=f"at most this many {what} (default %(default)s)")
