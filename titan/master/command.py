"""`python -m titan.master`: parse the flags, refuse an unsafe address, run the master until a signal."""

from __future__ import annotations

import gc
import logging
import signal
import sys

import zmq

from titan import log_level
from titan.master.config import MasterConfig, parse_args
from titan.master.journal import JournalCorrupt, JournalInUse, JournalWriteError
from titan.master.log_guard import LogGuard
from titan.master.loop import Master, log
from titan.net import security


def main(argv=None) -> int:
    return serve(parse_args(argv))


def serve(config: MasterConfig) -> int:
    """Run a master with these settings until SIGINT or SIGTERM (`python -m titan.master`, `titan master`)."""
    log_level.configure(config.log_level, "master")
    # The master holds many long-lived objects (every job); default GC thresholds would re-scan them
    # all every few thousand allocations. Collect young objects less often; nothing here is cyclic-heavy.
    gc.set_threshold(100_000, 50, 100)
    for handler in logging.getLogger().handlers:   # peers' text is escaped, repeats are rate-limited
        handler.addFilter(LogGuard(config.max_log_repeats))
    for host in (config.host, config.metrics_host):
        if not (config.keys or config.insecure or security.is_loopback(host)):
            print(security.refusal_to_bind(host), file=sys.stderr)   # before any socket exists
            return 2
    if config.insecure and not config.keys and not security.is_loopback(config.host):
        log.warning("listening on %s WITHOUT keys (--insecure): anyone who reaches it can run code on the "
                    "workers", config.host)
    try:
        master = Master(config)
    except zmq.ZMQError as exc:
        print(f"titan master: cannot bind {config.host}:{config.port}-{config.port + 3}: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:   # only the metrics port binds through the socket module
        print(f"titan master: cannot serve metrics on {config.metrics_host}:{config.metrics_port}: "
              f"{exc.strerror or exc}", file=sys.stderr)
        return 1
    except (JournalCorrupt, JournalInUse, JournalWriteError, security.KeyFileError) as exc:
        print(f"titan master: {exc}", file=sys.stderr)
        return 1
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: master.stop())
    print(master.describe_endpoints(), flush=True)
    try:
        master.serve_forever()
    finally:
        master.close()
    print("Titan master stopped.", flush=True)
    return 0
