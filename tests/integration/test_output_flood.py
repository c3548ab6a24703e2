"""A job that prints as fast as it can: its worker keeps heartbeating, every result arrives, and its log
holds all its output or says exactly how much was dropped and why.

The master is paused for a moment while the job floods, as a busy or slow master would be: the worker
then has more to send than the link takes, which is when it used to drop whole batches of messages."""

from __future__ import annotations

import os
import re
import signal
import sys
import time

import msgpack
import zmq

from tests.conftest import start_process, stop, wait_until
from titan import defaults
from titan.cluster import WorkerSpec, free_port_block
from titan.net import protocol
from titan_sdk import TitanJob

FLOOD_SECONDS = 2.5
MASTER_PAUSE_S = 1.0   # well under the worker's --master-dead-after and the master's --worker-dead-after
FLOOD = f"""
import os, sys, time
chunk = b"x" * (1 << 20)
written, until = 0, time.monotonic() + {FLOOD_SECONDS}
while time.monotonic() < until:
    written += os.write(1, chunk)
sys.stdout.write(f"\\nflood wrote {{written}} bytes\\n")
"""
MASTER_DROPPED = re.compile(r"^\[titan: ([\d,]+) earlier bytes of output dropped; the master keeps the last")


def test_a_job_flooding_its_output_ends_on_time_beside_a_normal_job_with_nothing_lost_silently(
        make_cluster, script):
    cluster = make_cluster(WorkerSpec("w1", slots=2))
    flood, ok = script("flood.py", FLOOD), script("ok.py", "import time; time.sleep(0.5); print('ok')")
    with cluster.client(timeout=15) as client:
        started = time.monotonic()
        client.submit_job(TitanJob("flood", flood))
        client.submit_job(TitanJob("quiet", ok))
        wait_until(lambda: client.read_logs("flood")["text"], timeout=15, what="the flood's first output")
        cluster.master.send_signal(signal.SIGSTOP)
        try:
            time.sleep(MASTER_PAUSE_S)
        finally:
            cluster.master.send_signal(signal.SIGCONT)
        assert client.wait(["flood", "quiet"], timeout=40) == {"flood": "COMPLETED", "quiet": "COMPLETED"}
        took = time.monotonic() - started
        assert client.fetch_logs("quiet") == "ok\n"
        assert [client.job_info(job)["attempt"] for job in ("flood", "quiet")] == [1, 1], "nothing ran twice"
        assert [w["name"] for w in client.stats()["workers"]] == ["w1"]
        text = client.fetch_logs("flood")
    with open(os.path.join(cluster.log_dir, "master.log")) as handle:
        master_log = handle.read()
    assert "declared dead" not in master_log, "the worker kept heartbeating while its job flooded"
    tail = re.search(r"\nflood wrote (\d+) bytes\n$", text)
    written = int(tail.group(1)) + len(tail.group(0))   # everything the job wrote, its last line too
    dropped = MASTER_DROPPED.match(text)
    kept = len(text[dropped.end():].split("\n", 1)[1] if dropped else text)
    assert written > 1 << 20 and set(text[len(text) - len(tail.group(0)) - 1000:-len(tail.group(0))]) == {"x"}
    assert kept + (int(dropped.group(1).replace(",", "")) if dropped else 0) == written, \
        "every byte is in the log or counted by the marker line"
    assert took < 30, f"both jobs ended {took:.1f}s after submission"


class HandMadeMaster:
    """A master speaking the wire protocol directly, so the test decides which messages it answers."""

    def __init__(self):
        self.ctx = zmq.Context()
        self.ctx.linger = 0
        self.port = free_port_block("127.0.0.1", 4)
        self.router = self.ctx.socket(zmq.ROUTER)
        self.router.setsockopt(zmq.RCVHWM, 4)   # while the test reads nothing, ZeroMQ takes little either
        self.router.bind(f"tcp://127.0.0.1:{self.port + 1}")
        self.worker = None

    def next_messages(self, timeout: float = 10.0) -> list:
        """The messages of the next frame from the worker; heartbeats are answered as a master would."""
        assert self.router.poll(int(timeout * 1000)), f"the worker said nothing for {timeout}s"
        self.worker, frame = self.router.recv_multipart()
        message = msgpack.unpackb(frame, raw=False)
        messages = message["messages"] if message["op"] == "batch" else [message]
        if any(m["op"] == "heartbeat" for m in messages):
            self.send({"op": "heartbeat"})
        return messages

    def send(self, message: dict) -> None:
        self.router.send_multipart([self.worker, protocol.encode(message)])

    def close(self) -> None:
        self.ctx.destroy(linger=0)


def test_a_result_the_master_never_acknowledged_is_sent_again_without_a_new_registration():
    master = HandMadeMaster()
    worker = start_process([sys.executable, "-m", "titan.worker", "--master", f"127.0.0.1:{master.port}",
                            "--name", "w1", "--heartbeat-interval", "0.2", "--master-dead-after", "30"])
    try:
        assert master.next_messages()[0]["op"] == "register"
        master.send({"op": "welcome"})
        master.send({"op": "dispatch", "attempt": 1, "job": {"job_id": "j", "filename": "j.py",
                                                            "script": b"print('done')\n"}})
        results, ops = [], []
        deadline = time.monotonic() + 20
        while len(results) < 2 and time.monotonic() < deadline:
            messages = master.next_messages()
            ops += [m["op"] for m in messages]
            results += [m for m in messages if m["op"] == "finished"]
        assert [(r["job_id"], r["attempt"], r["exit_code"]) for r in results] == [("j", 1, 0)] * 2, ops
        assert "heartbeat" in ops, ops   # the result is sent again only after heartbeats
        # A registration sent before the welcome arrived crossed it (a slow start); the first heartbeat
        # says the worker is registered: none may follow it.
        assert "register" not in ops[ops.index("heartbeat"):], "sent again while registered, not after a new welcome"
        master.send({"op": "ack", "job_id": "j", "attempt": 1})
        until = time.monotonic() + 6 * 0.2 * defaults.RESULT_RESEND_HEARTBEATS
        while time.monotonic() < until:
            after_ack = [m for m in master.next_messages() if m["op"] == "finished"]
            assert not after_ack, "an acknowledged result is not sent again"
    finally:
        stop(worker)
        master.close()


UNREACHABLE_FLOOD = """
import os, sys, time
chunk, started = b"x" * (256 * 1024), time.monotonic()
written = 0
while time.monotonic() < started + 2.0:   # all of it while the master is away
    written += os.write(1, chunk)
time.sleep(max(0.0, started + 6.0 - time.monotonic()))   # the count, once the master is back
sys.stdout.write(f"\\nwrote {written} bytes\\n")
"""
WORKER_DROPPED = re.compile(r"\[titan worker: ([\d,]+) bytes of this job's stdout were dropped while the master "
                            r"was unreachable\]")


def test_output_past_the_bound_while_the_master_is_unreachable_is_dropped_with_a_marker_saying_how_much():
    master = HandMadeMaster()
    worker = start_process([sys.executable, "-m", "titan.worker", "--master", f"127.0.0.1:{master.port}",
                            "--name", "w1", "--heartbeat-interval", "0.2", "--master-dead-after", "1"])
    try:
        assert master.next_messages()[0]["op"] == "register"
        master.send({"op": "welcome"})
        master.send({"op": "dispatch", "attempt": 1, "job": {"job_id": "j", "filename": "j.py",
                                                            "script": UNREACHABLE_FLOOD.encode()}})
        time.sleep(3.5)   # the master reads nothing: the worker gives it up after 1 s, the job keeps writing
        output, result = b"", None
        deadline = time.monotonic() + 30
        while result is None and time.monotonic() < deadline:
            for message in master.next_messages():
                if message["op"] == "register":
                    master.send({"op": "welcome"})
                elif message["op"] == "log":
                    output += message["data"]
                elif message["op"] == "finished":
                    result = message
    finally:
        stop(worker)
        master.close()
    assert result is not None and result["exit_code"] == 0, "the job ran to its end and its result came"
    text = output.decode()
    written = int(re.search(r"\nwrote (\d+) bytes\n", text).group(1))
    dropped = sum(int(n.replace(",", "")) for n in WORKER_DROPPED.findall(text))
    assert dropped > 0, "the master was away long enough for output to pile past the bound"
    assert text.count("x") + dropped == written, "every byte arrived or is counted by a marker"
