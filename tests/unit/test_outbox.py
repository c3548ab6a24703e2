"""The worker's outbox on its own: nothing is dropped, control first, a job's result after its output."""

from __future__ import annotations

from titan import defaults
from titan.worker.outbox import Outbox, results_held_until


def log(job_id: str, size: int, attempt: int = 1) -> dict:
    return {"op": "log", "job_id": job_id, "attempt": attempt, "stream": "stdout", "data": b"x" * size}


def finished(job_id: str, attempt: int = 1) -> dict:
    return {"op": "finished", "job_id": job_id, "attempt": attempt, "exit_code": 0, "error": None}


def drain(outbox: Outbox) -> list:
    frames = []
    while outbox:
        frames.append(outbox.take_frame())
    return frames


def test_control_messages_go_first_and_a_result_never_overtakes_its_jobs_output():
    outbox = Outbox(frame_bytes=100)
    for message in (log("a", 60), log("a", 60), finished("a"), {"op": "heartbeat", "running": []}):
        outbox.add(message)
    frames = drain(outbox)
    assert [[m["op"] for m in frame] for frame in frames] == [["heartbeat", "log", "log"], ["finished"]]


def test_frames_stay_near_their_size_and_the_backlog_counts_what_waits():
    outbox = Outbox(frame_bytes=100)
    for _ in range(5):
        outbox.add(log("a", 40))
    outbox.add(log("b", 7))
    assert (outbox.backlog("a"), outbox.backlog("b")) == (200, 7)
    first = outbox.take_frame()
    assert [len(m["data"]) for m in first] == [40, 40, 40]
    assert outbox.backlog("a") == 80
    assert [len(m["data"]) for m in outbox.take_frame()] == [40, 40, 7]
    assert not outbox and outbox.backlog("a") == 0


def test_what_the_socket_refused_goes_first_next_time_and_nothing_is_lost():
    outbox = Outbox(frame_bytes=1000)
    outbox.add({"op": "heartbeat", "running": ["old"]})
    outbox.add(log("a", 10))
    outbox.add(finished("a"))
    refused = outbox.take_frame()
    outbox.add({"op": "heartbeat", "running": ["new"]})   # newer than the refused one: it alone is kept
    outbox.add({"op": "service_up", "job_id": "s", "attempt": 1})
    outbox.add(log("b", 5))
    outbox.give_back(refused)
    assert outbox.backlog("a") == 10
    (frame,) = drain(outbox)
    assert [(m["op"], m.get("job_id")) for m in frame] == [
        ("heartbeat", None), ("service_up", "s"), ("log", "a"), ("finished", "a"), ("log", "b")]
    assert frame[0]["running"] == ["new"]


def test_a_result_sent_again_while_the_first_still_waits_is_queued_once():
    outbox = Outbox()
    outbox.add(finished("a"))
    outbox.add(finished("a"))
    outbox.add(finished("a", attempt=2))
    assert [(m["job_id"], m["attempt"]) for m in outbox.take_frame()] == [("a", 1), ("a", 2)]
    outbox.add(finished("a"))   # once it has left, a resend is queued again
    assert [m["op"] for m in outbox.take_frame()] == ["finished"]


def test_only_the_newest_registration_waits():
    outbox = Outbox()
    for name in ("first", "second"):
        outbox.add({"op": "register", "name": name})
    assert [m["name"] for m in outbox.take_frame()] == ["second"]


def test_output_alone_names_its_jobs_and_anything_else_waiting_names_none():
    """The worker holds a young job's output only while nothing but output waits (loop._flush)."""
    outbox = Outbox()
    assert outbox.output_only_of() == set()
    outbox.add(log("a", 3))
    outbox.add(log("b", 3))
    assert outbox.output_only_of() == {"a", "b"}
    outbox.add(finished("a"))
    assert outbox.output_only_of() == set()
    drain(outbox)
    outbox.add(log("c", 3))
    outbox.add({"op": "heartbeat"})
    assert outbox.output_only_of() == set()


def test_results_and_output_only_says_whether_results_wait_without_a_control_message():
    outbox = Outbox()
    outbox.add(log("a", 3))
    assert not outbox.results_and_output_only()          # output alone: the output hold decides
    outbox.add(finished("a"))
    assert outbox.results_and_output_only()
    outbox.add({"op": "heartbeat", "running": []})
    assert not outbox.results_and_output_only()          # a control message goes now, results with it
    drain(outbox)
    assert not outbox.results_and_output_only()


def test_a_result_waits_only_while_another_young_job_runs_and_never_past_the_hold():
    hold, young = defaults.WORKER_RESULT_HOLD_S, defaults.WORKER_OUTPUT_HOLD_S
    now = 100.0
    assert results_held_until(now, now, []) is None                          # nothing else runs: now
    assert results_held_until(now, now, [now - 2 * young]) is None           # only an older job: now
    assert results_held_until(now, now, [now - young / 2]) == now + hold     # a young one: up to the hold
    assert results_held_until(now - hold, now, [now - young / 2]) is None    # the hold is over: now
