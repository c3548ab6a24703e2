"""An embedded local cluster: one master and N workers as child processes on loopback.

Used by `titan up`, `titan demo`, the benchmarks and the tests, so all of them run the real thing.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import List, Optional, Sequence

from titan import defaults

PORTS_PER_MASTER = 4


@dataclass
class WorkerSpec:
    name: str
    capabilities: Sequence[str] = ()
    slots: int = 2
    extra_args: Sequence[str] = ()      # more `python -m titan.worker` flags, e.g. ("--executor", "null")


@dataclass
class LocalCluster:
    workers: List[WorkerSpec] = field(default_factory=lambda: [WorkerSpec("worker-1")])
    host: str = "127.0.0.1"
    port: int = 0                       # 0: pick four free consecutive ports
    data_dir: Optional[str] = None
    heartbeat_interval: float = defaults.HEARTBEAT_INTERVAL_S
    worker_dead_after: float = defaults.WORKER_DEAD_AFTER_S
    master_args: Sequence[str] = ()
    log_dir: Optional[str] = None       # where process output goes; None: discarded
    keys: Optional[str] = None          # a key directory (titan keys init): CURVE for master, workers, client
    master: Optional[subprocess.Popen] = None
    worker_processes: dict = field(default_factory=dict)

    def start(self, timeout: float = 20.0) -> "LocalCluster":
        self.port = self.port or free_port_block(self.host, PORTS_PER_MASTER)
        self.start_master()
        for spec in self.workers:
            self.start_worker(spec)
        self.wait_for_workers(len(self.workers), timeout)
        return self

    def start_master(self) -> subprocess.Popen:
        command = [sys.executable, "-m", "titan.master", "--host", self.host, "--port", str(self.port),
                   "--heartbeat-interval", str(self.heartbeat_interval),
                   "--worker-dead-after", str(self.worker_dead_after), *self.master_args]
        if self.data_dir:
            command += ["--data-dir", self.data_dir]
        if self.keys:
            command += ["--keys", self.keys]
        self.master = self._spawn(command, "master")
        return self.master

    def start_worker(self, spec: WorkerSpec) -> subprocess.Popen:
        command = [sys.executable, "-m", "titan.worker", "--master", f"{self.host}:{self.port}",
                   "--name", spec.name, "--slots", str(spec.slots),
                   "--heartbeat-interval", str(self.heartbeat_interval),
                   "--master-dead-after", str(self.worker_dead_after)]
        for capability in spec.capabilities:
            command += ["--cap", capability]
        if self.keys:
            command += ["--keys", self.keys]
        process = self._spawn([*command, *spec.extra_args], spec.name)
        self.worker_processes[spec.name] = process
        return process

    def _spawn(self, command: List[str], label: str) -> subprocess.Popen:
        output = subprocess.DEVNULL
        if self.log_dir:
            os.makedirs(self.log_dir, exist_ok=True)
            output = open(os.path.join(self.log_dir, f"{label}.log"), "ab")
        try:
            return subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        finally:
            if output is not subprocess.DEVNULL:
                output.close()

    def client(self, timeout: float = 10.0):
        from titan_sdk import TitanClient  # the SDK sits above this module; import it only when asked
        return TitanClient(host=self.host, port=self.port, timeout=timeout, keys=self.keys)

    def wait_for_workers(self, count: int, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        with self.client(timeout=timeout) as client:
            while True:
                self._check_alive()
                workers = client.stats()["workers"]
                if len(workers) >= count:
                    return
                if time.monotonic() > deadline:
                    names = [w["name"] for w in workers]
                    raise TimeoutError(f"only {len(workers)} of {count} workers registered: {names}")
                time.sleep(0.05)

    def _check_alive(self) -> None:
        if self.master is not None and self.master.poll() is not None:
            raise RuntimeError(f"the master exited with code {self.master.returncode}"
                               + (f"; see {self.log_dir}/master.log" if self.log_dir else ""))

    def named_processes(self) -> List[tuple]:
        named = [("master", self.master), *self.worker_processes.items()]
        return [(name, process) for name, process in named if process is not None]

    def processes(self) -> List[subprocess.Popen]:
        return [process for _, process in self.named_processes()]

    def stop(self, grace: float = 5.0) -> None:
        """SIGTERM everything (workers first, so they say goodbye), then SIGKILL what is still there."""
        for process in [*self.worker_processes.values(), self.master]:
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        for process in self.processes():
            try:
                process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def __enter__(self) -> "LocalCluster":
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc) -> None:
        self.stop()


def free_port_block(host: str, count: int, attempts: int = 200) -> int:
    """A base port P such that P..P+count-1 are all free on `host` right now."""
    for _ in range(attempts):
        base = random.randint(20000, 60000 - count)
        if all(_port_is_free(host, base + i) for i in range(count)):
            return base
    raise RuntimeError(f"found no {count} consecutive free ports on {host}")


def ports_in_use(host: str, base: int, count: int = PORTS_PER_MASTER) -> List[int]:
    """Which of base..base+count-1 something on `host` already listens on (or holds)."""
    return [port for port in range(base, base + count) if not _port_is_free(host, port)]


def _port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True
