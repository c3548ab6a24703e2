"""Masters sharing a PostgreSQL journal, and workers given every master's address, as real processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import Dict, List, Optional

from titan.cluster import PORTS_PER_MASTER, free_port_block
from tests.conftest import wait_until

# As tests/conftest.py's (not imported from there: benchmarks/failover.py uses this module too, and
# importing the test configuration would turn on strict message checks in its masters).
FAST_HEARTBEAT_S = 0.2
FAST_DEAD_AFTER_S = 2.0


class SharedJournalCluster:
    def __init__(self, url: str, log_dir: str, masters: int = 2, lease_timeout: float = 2.0,
                 heartbeat: float = FAST_HEARTBEAT_S, dead_after: float = FAST_DEAD_AFTER_S):
        self.url, self.log_dir, self.lease_timeout = url, log_dir, lease_timeout
        self.heartbeat, self.dead_after = heartbeat, dead_after
        os.makedirs(log_dir, exist_ok=True)
        self.ports: List[int] = []
        for _ in range(masters):   # distinct blocks: the standbys bind nothing until they lead
            port = free_port_block("127.0.0.1", PORTS_PER_MASTER)
            while any(abs(port - taken) < PORTS_PER_MASTER for taken in self.ports):
                port = free_port_block("127.0.0.1", PORTS_PER_MASTER)
            self.ports.append(port)
        self.masters: Dict[int, subprocess.Popen] = {}
        self.workers: List[subprocess.Popen] = []

    @property
    def hosts(self) -> str:
        return ",".join(f"127.0.0.1:{port}" for port in self.ports)

    def start_master(self, port: int) -> subprocess.Popen:
        command = [sys.executable, "-m", "titan.master", "--host", "127.0.0.1", "--port", str(port),
                   "--journal", self.url, "--lease-timeout", str(self.lease_timeout),
                   "--heartbeat-interval", str(self.heartbeat), "--worker-dead-after", str(self.dead_after)]
        self.masters[port] = self._spawn(command, f"master-{port}")
        return self.masters[port]

    def start_worker(self, name: str, slots: int = 4) -> subprocess.Popen:
        command = [sys.executable, "-m", "titan.worker", "--master", self.hosts, "--name", name,
                   "--slots", str(slots), "--heartbeat-interval", str(self.heartbeat),
                   "--master-dead-after", str(self.dead_after)]
        process = self._spawn(command, name)
        self.workers.append(process)
        return process

    def start(self, workers: int = 2) -> "SharedJournalCluster":
        for port in self.ports:
            self.start_master(port)
            if port == self.ports[0]:
                self.wait_for_leader(exclude=None)   # the first one leads: tests know which to kill
        for n in range(workers):
            self.start_worker(f"w{n + 1}")
        with self.client() as client:
            wait_until(lambda: len(client.stats()["workers"]) == workers, 30, "the workers to register")
        return self

    def client(self, timeout: float = 30.0):
        from titan_sdk import TitanClient
        return TitanClient(host=self.hosts, timeout=timeout)

    def leadership(self) -> Optional[dict]:
        import psycopg
        from titan.master.lease import read_leadership
        with psycopg.connect(self.url, autocommit=True, connect_timeout=2) as db:
            try:
                return read_leadership(db)
            except psycopg.errors.UndefinedTable:
                return None

    def leader_port(self) -> Optional[int]:
        info = self.leadership()
        return int(info["address"].rsplit(":", 1)[1]) if info else None

    def wait_for_leader(self, exclude: Optional[int], timeout: float = 30.0) -> int:
        """The port of the master that leads once it is not `exclude`, and serves (its client port answers)."""
        def leading():
            port = self.leader_port()
            return port if port is not None and port != exclude and _listening(port) else None
        return wait_until(leading, timeout, "a master to lead")

    def _spawn(self, command: List[str], label: str) -> subprocess.Popen:
        with open(os.path.join(self.log_dir, f"{label}.log"), "ab") as output:
            return subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def log(self, label: str) -> str:
        with open(os.path.join(self.log_dir, f"{label}.log"), errors="replace") as handle:
            return handle.read()

    def stop(self) -> None:
        processes = [*self.workers, *self.masters.values()]
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGCONT)
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        for process in processes:
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _listening(port: int) -> bool:
    import socket
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0
