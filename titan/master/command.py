"""`python -m titan.master`: parse the flags, refuse an unsafe address, run the master until a signal."""

from __future__ import annotations

import logging
import os
import signal
import socket as host_socket
import sys
import time
from typing import Optional

import zmq

from titan import log_level
from titan.master.collector import Collector
from titan.master.config import MasterConfig, parse_args
from titan.master.journal import Deposed, JournalCorrupt, JournalInUse, JournalWriteError
from titan.master.log_guard import LogGuard
from titan.master.loop import Master, log
from titan.master.postgres_connect import PostgresUnavailable, redacted, require_psycopg
from titan.net import security


# A master that lost its lease to another exits with this status (a supervisor may restart it: it then
# waits as a standby).
DEPOSED_EXIT = 3


def main(argv=None) -> int:
    return serve(parse_args(argv))


def serve(config: MasterConfig) -> int:
    """Run a master with these settings until SIGINT or SIGTERM (`python -m titan.master`, `titan master`)."""
    log_level.configure(config.log_level, "master")
    # The master collects its garbage itself, between turns (titan/master/collector.py says why).
    collector = Collector().start(time.monotonic())
    try:
        return _serve(config, collector)
    finally:
        collector.stop()


def _serve(config: MasterConfig, collector: Collector) -> int:
    for handler in logging.getLogger().handlers:   # peers' text is escaped, repeats are rate-limited
        handler.addFilter(LogGuard(config.max_log_repeats))
    for host in (config.host, config.metrics_host):
        if not (config.keys or config.insecure or security.is_loopback(host)):
            print(security.refusal_to_bind(host), file=sys.stderr)   # before any socket exists
            return 2
    if config.insecure and not config.keys and not security.is_loopback(config.host):
        log.warning("listening on %s WITHOUT keys (--insecure): anyone who reaches it can run code on the "
                    "workers", config.host)
    stopping = []
    for sig in (signal.SIGINT, signal.SIGTERM):   # while a standby waits; the master's own handlers follow
        signal.signal(sig, lambda *_: stopping.append(True))
    try:
        epoch = _lead(config, lambda: not stopping) if config.journal else None
        if config.journal and epoch is None:
            print("Titan master (standby) stopped.", flush=True)
            return 0
        master = Master(config, epoch)
    except zmq.ZMQError as exc:
        print(f"titan master: cannot bind {config.host}:{config.port}-{config.port + 3}: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:   # only the metrics port binds through the socket module
        print(f"titan master: cannot serve metrics on {config.metrics_host}:{config.metrics_port}: "
              f"{exc.strerror or exc}", file=sys.stderr)
        return 1
    except (JournalCorrupt, JournalInUse, JournalWriteError, PostgresUnavailable, security.KeyFileError) as exc:
        print(f"titan master: {exc}", file=sys.stderr)
        return 1
    except Deposed as exc:   # taken over while it was loading the journal
        print(f"titan master: stopping: {exc}", file=sys.stderr, flush=True)
        return DEPOSED_EXIT
    master.collector = collector
    collector.keep_all()   # the jobs it recovered are alive: no young collection scans them
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: master.stop())
    print(master.describe_endpoints(), flush=True)
    try:
        master.serve_forever()
    except Deposed as exc:
        log.error("stopping: %s", exc)
        print(f"titan master: stopping: {exc}", file=sys.stderr, flush=True)
        return DEPOSED_EXIT
    finally:
        master.close()
    print("Titan master stopped.", flush=True)
    return 0


def _lead(config: MasterConfig, keep_waiting) -> Optional[int]:
    """Wait as a standby until this master holds the lease of the PostgreSQL journal; its epoch, or None
    if told to stop first."""
    from titan.master.lease import Lease
    require_psycopg()   # say so now, not once per poll
    address = f"{advertised_host(config.host)}:{config.port}"
    lease = Lease(config.journal, f"{host_socket.gethostname()}-{os.getpid()}", address, config.lease_timeout)
    print(f"Titan master {lease.holder} ({address}): standby on journal {redacted(config.journal)} until it "
          "holds the lease", flush=True)
    try:
        epoch = lease.wait(keep_waiting)
    finally:
        lease.close()
    if epoch is not None:
        log.info("took the lease of journal %s (epoch %d): leading", redacted(config.journal), epoch)
    return epoch


def advertised_host(bind_host: str) -> str:
    """The name others reach this master by: the bind address, or the host's name for a wildcard."""
    return host_socket.gethostname() if bind_host in ("0.0.0.0", "*", "::") else bind_host
