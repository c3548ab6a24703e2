"""Numbers a peer sends that no journal column or timer can hold: each is refused at the wire, naming the
message and the field, and the master keeps serving and restarts cleanly on its journal."""

from __future__ import annotations

import os
import time
import uuid

import msgpack
import pytest
import zmq

from tests.conftest import wait_until
from tests.integration.conftest import HandMadeWorker
from titan.cluster import WorkerSpec
from titan_sdk import TitanJob


def master_log(cluster) -> str:
    with open(os.path.join(cluster.log_dir, "master.log"), "rb") as handle:
        return handle.read().decode("utf-8", errors="replace")


@pytest.mark.parametrize("exit_code", [2 ** 63, 2 ** 64 - 1])   # msgpack carries up to 2**64 - 1
def test_a_worker_result_too_big_for_the_journal_is_refused_and_restarts_stay_clean(
        make_cluster, script, tmp_path, exit_code):
    cluster = make_cluster(WorkerSpec("real", slots=1), data_dir=str(tmp_path / "data"))
    ok = script("ok.py", "print('ok')")
    worker = HandMadeWorker(cluster, "BYHAND")
    try:
        with cluster.client(timeout=15) as client:
            client.submit_job(TitanJob("huge", ok, requirement="BYHAND"))
            dispatch = worker.next_message(("dispatch",))
            worker.send({"op": "finished", "job_id": "huge", "attempt": dispatch["attempt"],
                         "exit_code": exit_code})
            wait_until(lambda: "'exit_code'" in master_log(cluster), timeout=15, what="the refusal in the log")
            refusal = next(line for line in master_log(cluster).splitlines() if "'exit_code'" in line)
            assert "'finished'" in refusal and "64-bit" in refusal, refusal
            time.sleep(1.0)   # the master folds its journal when idle: the fold must not kill it
            assert cluster.master.poll() is None, "the master died"
            assert client.get_job_status("huge") == "RUNNING", "a refused result changes nothing"
            client.submit_job(TitanJob("after", ok))
            assert client.wait("after", timeout=20) == "COMPLETED", "the master still schedules"
            worker.finish(dispatch)
            assert client.wait("huge", timeout=20) == "COMPLETED"
    finally:
        worker.close()
    cluster.stop()
    cluster.start_master()
    with cluster.client(timeout=15) as client:
        assert client.get_job_status("huge") == "COMPLETED", "the restarted master loaded its journal"
        assert client.get_job_status("after") == "COMPLETED"


def ask(cluster, message: dict) -> dict:
    """One request from a raw DEALER, as any program could send it without the SDK's own checks."""
    ctx = zmq.Context()
    try:
        dealer = ctx.socket(zmq.DEALER)
        dealer.linger = 0
        dealer.connect(f"tcp://{cluster.host}:{cluster.port}")
        dealer.send(msgpack.packb({"rid": uuid.uuid4().hex, **message}, use_bin_type=True))
        assert dealer.poll(10_000), f"no reply to {message['op']!r}"
        return msgpack.unpackb(dealer.recv(), raw=False)
    finally:
        ctx.destroy(linger=0)


@pytest.mark.parametrize("field, value", [("max_wait_seconds", float("nan")), ("delay", float("inf")),
                                          ("timeout", float("nan")), ("priority", 2 ** 63)])
def test_a_submission_with_a_number_no_timer_can_hold_is_refused_and_timers_keep_running(
        make_cluster, script, field, value):
    cluster = make_cluster(WorkerSpec("w1", slots=1))
    job = {"job_id": "bad", "filename": "ok.py", "script": b"print('ok')\n", "hitl_message": "check",
           field: value}
    reply = ask(cluster, {"op": "submit", "dag": "d", "jobs": [job]})
    assert reply["ok"] is False, reply
    assert f"job 'bad': field '{field}' must be a" in reply["error"]["message"], reply
    ok = script("ok.py", "print('ok')")
    with cluster.client(timeout=15) as client:
        started = time.monotonic()
        client.submit_job(TitanJob("delayed", ok, delay=500))   # milliseconds, as in the original SDK
        assert client.wait("delayed", timeout=20) == "COMPLETED", "timers still fire"
        assert time.monotonic() - started >= 0.5
        assert client.get_job_status("bad") == "NULL", "the refused job was not admitted"
