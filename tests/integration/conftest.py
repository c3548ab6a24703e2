"""Fixtures for integration tests that speak the wire protocol themselves."""

from __future__ import annotations

import time

import msgpack
import pytest
import zmq

from tests.conftest import FAST_HEARTBEAT_S
from titan.cluster import WorkerSpec
from titan.net import protocol


class HandMadeWorker:
    """A worker speaking the wire protocol directly, so the test sees exactly what the master sends."""

    def __init__(self, cluster, capability: str):
        self.ctx = zmq.Context()
        self.socket = self.ctx.socket(zmq.DEALER)
        self.socket.linger = 0
        self.socket.connect(f"tcp://{cluster.host}:{cluster.port + 1}")
        self.received: list = []   # messages of a batch not looked at yet
        self.send({"op": "register", "name": "by-hand", "capabilities": [capability], "slots": 1})
        assert self.next_message()["op"] == "welcome"

    def send(self, message: dict) -> None:
        self.socket.send(protocol.encode(message))

    def next_message(self, wanted=("welcome", "dispatch", "ack"), timeout: float = 20.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            while self.received:
                message = self.received.pop(0)
                if message["op"] in wanted:
                    return message
            if self.socket.poll(int(FAST_HEARTBEAT_S * 1000)):
                self.received += self.unbatch(self.socket.recv())
            else:
                self.send({"op": "heartbeat"})
        raise AssertionError(f"no {wanted} message from the master within {timeout}s")

    @staticmethod
    def unbatch(frame: bytes) -> list:
        message = msgpack.unpackb(frame, raw=False)
        return message["messages"] if message["op"] == "batch" else [message]

    def finish(self, dispatch: dict) -> None:
        self.send({"op": "finished", "job_id": dispatch["job"]["job_id"], "attempt": dispatch["attempt"],
                   "exit_code": 0})

    def close(self) -> None:
        self.ctx.destroy(linger=0)


@pytest.fixture
def by_hand(make_cluster):
    """A cluster with one real worker, and a hand-made one that alone offers BYHAND."""
    cluster = make_cluster(WorkerSpec("real", slots=1))
    worker = HandMadeWorker(cluster, "BYHAND")
    yield cluster, worker
    worker.close()
