"""What peers send is checked before it is shown or logged: a worker's name and tags, what it says of
its host, and text that would forge the master's log lines."""

from __future__ import annotations

import os
import time

import zmq

from titan import defaults
from titan.net import protocol
from tests.conftest import wait_until


def master_log(cluster) -> str:
    with open(os.path.join(cluster.log_dir, "master.log"), errors="replace") as handle:
        return handle.read()


def register(cluster, ctx: zmq.Context, **fields) -> zmq.Socket:
    socket = ctx.socket(zmq.DEALER)
    socket.linger = 0
    socket.connect(f"tcp://127.0.0.1:{cluster.port + defaults.WORKER_PORT_OFFSET}")
    socket.send(protocol.encode({"op": "register", "capabilities": [], "slots": 1, **fields}))
    return socket


def test_a_worker_cannot_fake_its_shown_name_or_write_control_characters(cluster, client):
    ctx = zmq.Context()
    try:
        sockets = [register(cluster, ctx, name="\x1b[2Jevil\n2026-12-03 master INFO forged")]   # kept open
        sockets.append(register(cluster, ctx, name="honest", capabilities=["TAG"],
                 info={"name": "cpu-1", "worker_id": "x", "host": "box", "pid": 7, "extra": "dropped"}))
        wait_until(lambda: any(w["name"] == "honest" for w in client.stats()["workers"]), 10, "honest to join")
    finally:
        ctx.destroy(linger=0)
    workers = {w["name"]: w for w in client.stats()["workers"]}
    assert sorted(workers) == ["cpu-1", "gpu-1", "honest"], sorted(workers)
    honest = workers["honest"]
    assert honest["host"] == "box" and honest["pid"] == 7 and "extra" not in honest
    assert honest["worker_id"] != "x"
    logged = master_log(cluster)
    assert "refused a worker registration" in logged and "printable" in logged
    assert "\x1b" not in logged and "\nforged" not in logged and "\n2026-12-03 master INFO forged" not in logged


def test_a_flood_of_bad_requests_writes_a_bounded_log(cluster, client):
    ctx = zmq.Context()
    socket = ctx.socket(zmq.DEALER)
    socket.linger = 0
    socket.connect(f"tcp://127.0.0.1:{cluster.port}")
    try:
        for i in range(3000):
            socket.send(protocol.encode({"op": "status", "rid": f"r{i}", "job_id": 5}))
        answered, deadline = 0, time.monotonic() + 30
        while answered < 3000 and time.monotonic() < deadline:
            if socket.poll(200):
                socket.recv()
                answered += 1
    finally:
        ctx.destroy(linger=0)
    assert answered == 3000
    refusals = master_log(cluster).count("refused a request")
    assert 1 <= refusals <= 25, f"{refusals} log lines for 3,000 refusals of one kind"
