"""A dispatch lost on the way (the link dropped it) is noticed from the worker's heartbeat and sent again;
nothing is sent again while the worker holds the job or has ended it."""

from __future__ import annotations

import time


from tests.conftest import FAST_HEARTBEAT_S
from tests.integration.conftest import HandMadeWorker
from titan import defaults
from titan_sdk import TitanJob

GRACE_S = defaults.LOST_DISPATCH_HEARTBEATS * FAST_HEARTBEAT_S


def heartbeats_for(worker: HandMadeWorker, seconds: float, **fields) -> list:
    """Heartbeat with these fields for a while; returns the dispatches that arrived meanwhile."""
    dispatches, deadline = [], time.monotonic() + seconds
    while time.monotonic() < deadline:
        worker.send({"op": "heartbeat", **fields})
        if worker.socket.poll(int(FAST_HEARTBEAT_S * 1000)):
            worker.received += worker.unbatch(worker.socket.recv())
        dispatches += [m for m in worker.received if m["op"] == "dispatch"]
        worker.received = [m for m in worker.received if m["op"] != "dispatch"]
    return dispatches


def test_a_dispatch_the_worker_never_got_is_sent_again(by_hand, script):
    cluster, worker = by_hand
    ok = script("ok.py", "print('ok')")
    with cluster.client(timeout=15) as client:
        client.submit_job(TitanJob("lost", ok, requirement="BYHAND"))
        first = worker.next_message(("dispatch",))          # "lost": the worker acts as if it never came
        held = heartbeats_for(worker, 2 * GRACE_S, running=["lost"], ended=[])
        assert held == [], "a job the worker holds is not sent again"
        again = heartbeats_for(worker, 3 * GRACE_S, running=[], ended=[])
        assert again and {(d["job"]["job_id"], d["attempt"]) for d in again} == {("lost", first["attempt"])}
        assert again[0]["job"]["script"] == first["job"]["script"]
        worker.finish(again[0])
        assert client.wait("lost", timeout=20) == "COMPLETED"


def test_nothing_is_sent_again_for_an_ended_job_or_to_a_worker_that_does_not_say(by_hand, script):
    cluster, worker = by_hand
    ok = script("ok.py", "print('ok')")
    with cluster.client(timeout=15) as client:
        client.submit_job(TitanJob("quiet", ok, requirement="BYHAND"))
        worker.next_message(("dispatch",))
        assert heartbeats_for(worker, 3 * GRACE_S, running=[], ended=["quiet"]) == []
        assert heartbeats_for(worker, 3 * GRACE_S, running=[]) == []   # no 'ended': an older worker
        assert client.get_job_status("quiet") == "RUNNING"


def test_a_result_the_heartbeat_says_is_held_is_asked_for_at_once(by_hand, script):
    """The heartbeat's `ended` names results the worker holds; one the master has not received a heartbeat
    later (lost on the way) is asked for with `send_results`, without waiting for a re-registration."""
    cluster, worker = by_hand
    ok = script("ok.py", "print('ok')")
    with cluster.client(timeout=15) as client:
        client.submit_job(TitanJob("held", ok, requirement="BYHAND"))
        dispatch = worker.next_message(("dispatch",))
        heartbeats_for(worker, 3 * FAST_HEARTBEAT_S, running=[], ended=["held"])
        asked = [m for m in worker.received if m["op"] == "send_results"]
        assert asked and asked[0]["job_ids"] == ["held"], worker.received
        worker.finish(dispatch)
        assert client.wait("held", timeout=20) == "COMPLETED"
        worker.received.clear()
        heartbeats_for(worker, 3 * FAST_HEARTBEAT_S, running=[], ended=["held"])   # an ack it missed
        assert not [m for m in worker.received if m["op"] == "send_results"], "only results it still lacks"
