"""Fuzzing the wire against a real master: seeded random messages, bounded in count and time, to all four
sockets, in the catalogue's shapes with wrong values and as plain garbage. Afterwards the master must be
alive, have answered every request, logged no traceback, do real work, and restart on its journal."""

from __future__ import annotations

import math
import os
import random
import time

import msgpack
import pytest
import zmq

from titan import defaults
from titan.cluster import WorkerSpec
from titan.net import protocol
from titan_sdk import TitanJob
from tests.chaos.test_chaos import kill9, master_log
from tests.conftest import wait_until

SEED = int(os.environ.get("TITAN_FUZZ_SEED", "20261203"))
MESSAGES_PER_SOCKET = 1_500
FUZZ_SECONDS = 8.0          # per socket, at most


def weird_value(rng: random.Random, depth: int = 0):
    """A value of any shape msgpack can carry, favouring the edges: huge and negative numbers, NaN and
    infinities, empty and control-character strings, bytes, nesting."""
    choices = [
        lambda: rng.choice([0, -1, 1, 2**31, 2**63, 2**64 - 1, -(2**63), 10**6]),
        lambda: rng.choice([math.nan, math.inf, -math.inf, -0.0, 1e308, 1e-308, 0.5]),
        lambda: rng.choice(["", "x", "\0", "\x1b[2J", "a" * 5000, "../..", "é", "job-1", "hitl-gate-x"]),
        lambda: rng.choice([b"", b"\0" * 3, os.urandom(16)]),
        lambda: rng.choice([None, True, False]),
    ]
    if depth < 2:
        choices += [lambda: [weird_value(rng, depth + 1) for _ in range(rng.randint(0, 3))],
                    lambda: {rng.choice(["a", "job_id", "op", "x"]): weird_value(rng, depth + 1)
                             for _ in range(rng.randint(0, 3))}]
    return rng.choice(choices)()


def fuzzed_message(rng: random.Random, ops: dict, rid: str) -> dict:
    """An op of the table with each field present or not, mostly the wrong value, sometimes extra fields."""
    op = rng.choice(sorted(ops))
    message = {"op": op, "rid": rid}
    for name in ops[op]:
        if rng.random() < 0.8:
            message[name] = weird_value(rng)
    if rng.random() < 0.1:
        message[rng.choice(["extra", "token", "job"])] = weird_value(rng)
    return message


def frame(rng: random.Random, message: dict) -> bytes:
    """Mostly the message, sometimes not a map, not msgpack, or cut short."""
    roll = rng.random()
    if roll < 0.05:
        return os.urandom(rng.randint(0, 64))
    if roll < 0.08:
        return msgpack.packb(weird_value(rng), use_bin_type=True)
    packed = msgpack.packb(message, use_bin_type=True)
    return packed[:rng.randint(0, len(packed))] if roll < 0.12 else packed


def hammer_requests(ctx: zmq.Context, address: str, ops: dict, rng: random.Random, label: str) -> int:
    """Send fuzzed requests on a DEALER and read the replies; returns how many were answered."""
    socket = ctx.socket(zmq.DEALER)
    socket.linger = 0
    socket.connect(address)
    answered, deadline = 0, time.monotonic() + FUZZ_SECONDS
    sent = 0
    for i in range(MESSAGES_PER_SOCKET):
        if time.monotonic() > deadline:
            break
        socket.send(frame(rng, fuzzed_message(rng, ops, f"{label}-{i}")))
        sent += 1
        while socket.poll(0):
            socket.recv()
            answered += 1
    end = time.monotonic() + 10
    while answered < sent and time.monotonic() < end:
        if socket.poll(200):
            socket.recv()
            answered += 1
    socket.close()
    return answered, sent


def hammer_worker_socket(ctx: zmq.Context, address: str, rng: random.Random) -> None:
    """A registered fake worker that then sends every worker message with wrong values, and batches."""
    socket = ctx.socket(zmq.DEALER)
    socket.linger = 0
    socket.connect(address)
    socket.send(protocol.encode({"op": "register", "name": "fuzzer", "capabilities": ["FUZZ"], "slots": 2}))
    deadline = time.monotonic() + FUZZ_SECONDS
    for i in range(MESSAGES_PER_SOCKET):
        if time.monotonic() > deadline:
            break
        message = fuzzed_message(rng, protocol.WORKER_OPS, f"w-{i}")
        message.pop("rid")
        if rng.random() < 0.1:
            message = {"op": "batch", "messages": [fuzzed_message(rng, protocol.WORKER_OPS, "b") for _ in range(3)]}
        socket.send(frame(rng, message))
        while socket.poll(0):
            socket.recv()
    socket.send(protocol.encode({"op": "bye"}))
    socket.close()


def hammer_events(ctx: zmq.Context, address: str, rng: random.Random) -> None:
    socket = ctx.socket(zmq.XSUB)
    socket.linger = 0
    socket.connect(address)
    for _ in range(300):
        socket.send(rng.choice([b"\x01", b"\x00", b"\x02"]) + os.urandom(rng.randint(0, 300)))
    socket.close()


@pytest.mark.timeout(150)
def test_fuzzed_messages_on_every_socket_leave_the_master_whole(make_cluster, script, tmp_path):
    rng = random.Random(SEED)
    cluster = make_cluster(WorkerSpec("w1"), data_dir=str(tmp_path / "data"))
    base = f"tcp://127.0.0.1:{cluster.port}"
    ctx = zmq.Context()
    try:
        answered = {
            "client": hammer_requests(ctx, f"tcp://127.0.0.1:{cluster.port + defaults.CLIENT_PORT_OFFSET}",
                                      protocol.CLIENT_OPS, rng, "c"),
            "store": hammer_requests(ctx, f"tcp://127.0.0.1:{cluster.port + defaults.STORE_PORT_OFFSET}",
                                     protocol.STORE_OPS, rng, "s"),
        }
        hammer_worker_socket(ctx, f"tcp://127.0.0.1:{cluster.port + defaults.WORKER_PORT_OFFSET}", rng)
        hammer_events(ctx, f"tcp://127.0.0.1:{cluster.port + defaults.EVENTS_PORT_OFFSET}", rng)
    finally:
        ctx.destroy(linger=0)
    assert cluster.master.poll() is None, f"the master died (seed {SEED}):\n{master_log(cluster)[-3000:]}"
    for channel, (got, sent) in answered.items():
        # a cut or garbage frame has no rid to answer to; everything else is answered
        assert got >= sent * 0.8, f"{channel}: {got} of {sent} requests answered (seed {SEED}) in {base}"

    quick = script("quick.py", "print('still fine')\n")
    with cluster.client(timeout=20) as client:
        client.submit_job(TitanJob("after_fuzz", quick))
        assert client.wait("after_fuzz", timeout=60) == "COMPLETED"
        client.store_put("after", "fuzz")
    logged = master_log(cluster)
    assert "Traceback" not in logged and "internal error" not in logged, \
        f"internal errors while fuzzing (seed {SEED}):\n{logged[logged.find('Traceback') - 2000:][:6000]}"

    kill9(cluster.master)
    cluster.start_master()
    with cluster.client(timeout=20) as client:
        assert client.get_job_status("after_fuzz") == "COMPLETED"
        assert client.store_get("after") == "fuzz"
