"""The pure parts behind watching the cluster: logs read by offset, stats, and noticing lost events."""

from __future__ import annotations

from hypothesis import given, strategies as st

from titan.cli.common import Section
from titan.core.logs import JobLogs
from titan_sdk.event_order import EventGap, EventOrder

from tests.unit.sim import Sim, spec


# ----------------------------------------------------------------- logs by offset

def test_reading_by_offset_returns_only_what_is_new():
    logs = JobLogs()
    assert logs.text_since("j", 0) == ("", 0)
    logs.append("j", 1, "stdout", "one\n")
    text, offset = logs.text_since("j", 0)
    assert (text, offset) == ("one\n", 4)
    assert logs.text_since("j", offset) == ("", 4)
    logs.append("j", 1, "stderr", "two")
    logs.append("j", 1, "stdout", "\nthree\n")
    assert logs.text_since("j", offset) == ("two\nthree\n", 14)
    assert logs.text_since("j", 6) == ("o\nthree\n", 14), "an offset inside a chunk reads from there"


def test_a_new_attempt_is_marked_without_changing_what_was_read():
    logs = JobLogs()
    logs.append("j", 1, "stdout", "first try")
    first, offset = logs.text_since("j", 0)
    logs.append("j", 2, "stdout", "second try\n")
    rest, _ = logs.text_since("j", offset)
    assert first + rest == "first try\n--- attempt 2 ---\nsecond try\n"
    assert logs.text("j").startswith("--- attempt 1 ---\n"), "the whole text still marks every attempt"


def test_an_offset_past_the_end_reads_from_the_start_of_a_new_run():
    logs = JobLogs()
    logs.append("j", 1, "stdout", "long output of the first run\n")
    _, offset = logs.text_since("j", 0)
    logs.reset("j")
    logs.append("j", 1, "stdout", "rerun\n")
    assert logs.text_since("j", offset) == ("rerun\n", 6)


def test_a_follower_told_what_was_dropped_before_it_read_it():
    logs = JobLogs(max_bytes=15)
    logs.append("j", 1, "stdout", "0123456789")
    _, early = logs.text_since("j", 0)
    logs.append("j", 1, "stdout", "abcdefghij")          # the first 5 characters no longer fit
    assert logs.text_since("j", early) == ("abcdefghij", 20), "a follower that kept up loses nothing"
    late, offset = logs.text_since("j", 0)
    assert late.startswith("[titan: 5 characters of output dropped before they were read")
    assert late.endswith("]\n56789abcdefghij") and offset == 20
    logs.append("j", 2, "stdout", "retry\n")             # drops what is left of the first chunk, and "a"
    text, _ = logs.text_since("j", 20)
    assert text == "\n--- attempt 2 ---\nretry\n"
    late, _ = logs.text_since("j", 3)
    assert late.startswith("[titan: 8 characters of output dropped")
    assert late.endswith("]\nbcdefghij\n--- attempt 2 ---\nretry\n")


@given(st.lists(st.tuples(st.integers(1, 3), st.text(max_size=8)), max_size=12), st.data())
def test_following_in_any_steps_gives_the_same_text_as_reading_once(chunks, data):
    logs = JobLogs()
    followed, offset = "", 0
    for attempt, text in sorted(chunks, key=lambda c: c[0]):   # attempts only go up
        logs.append("j", attempt, "stdout", text)
        if data.draw(st.booleans()):
            new, offset = logs.text_since("j", offset)
            followed += new
    new, offset = logs.text_since("j", offset)
    assert followed + new == logs.text_since("j", 0)[0]
    assert offset == len(followed + new)


# ----------------------------------------------------------------- stats

def test_stats_give_heartbeat_ages_queue_depths_and_ready_jobs_by_requirement():
    sim = Sim()
    sim.join("w1", slots=1)
    sim.now = 2.0
    sim.join("g1", caps=["GPU"], slots=1)
    sim.submit(spec("a"), spec("b"), spec("c", ["a"]), spec("g", requirement="GPU"),
               spec("g2", requirement="GPU"), spec("t", requirement="TPU"))
    stats = sim.s.stats(now=3.5)
    ages = {w["name"]: w["last_heartbeat_s_ago"] for w in stats["workers"]}
    assert ages == {"w1": 3.5, "g1": 1.5}
    assert stats["jobs_by_state"]["RUNNING"] == 2 and stats["jobs_by_state"]["QUEUED"] == 3
    assert stats["queued_by_requirement"] == {"GPU": 2, "TPU": 1}, "a and b run (b on g1), c waits for a"
    assert stats["queue_depths"] == {"PENDING": 1, "QUEUED": 3, "WAITING_APPROVAL": 0, "backing_off": 0}
    assert sim.s.stats()["workers"][0]["last_heartbeat_s_ago"] is None, "no clock given, no age"


def test_stats_count_a_job_waiting_out_its_retry_backoff_and_skip_cancelled_queue_entries():
    sim = Sim()
    sim.join("w1", slots=1)
    sim.submit(spec("flaky", retries=2), spec("x"), spec("y"))
    sim.cancel("y")                                  # its queue entry stays until popped
    sim.finish("flaky", exit_code=3)                 # x starts; flaky backs off
    stats = sim.s.stats(now=sim.now)
    assert stats["queue_depths"]["QUEUED"] == 1 and stats["queue_depths"]["backing_off"] == 1
    assert stats["queued_by_requirement"] == {}
    assert stats["jobs_by_state"]["CANCELLED"] == 1


# ----------------------------------------------------------------- lost events

def event(topic: str, number, run_id: str = "run1") -> dict:
    return {"topic": topic, "topic_seq": number, "run_id": run_id}


def test_event_order_follows_each_topic_on_its_own():
    order = EventOrder()
    assert order.check(event("job.COMPLETED", 7)) is None, "the first event of a topic sets where it is"
    assert order.check(event("job.FAILED", 2)) is None
    assert order.check(event("job.COMPLETED", 8)) is None
    assert order.check(event("job.FAILED", 3)) is None, "other topics' events in between are not losses"


def test_event_order_sees_a_jump_in_a_topic_as_lost_events():
    order = EventOrder()
    order.check(event("job.COMPLETED", 7))
    assert order.check(event("job.COMPLETED", 11)) == EventGap("job.COMPLETED", 3)
    assert str(EventGap("job.COMPLETED", 3)) == "3 job.COMPLETED events lost"
    assert order.check(event("job.COMPLETED", 12)) is None, "counting goes on from the event that came"


def test_event_order_sees_another_run_of_the_master_as_lost_events():
    order = EventOrder()
    order.check(event("job.COMPLETED", 7))
    assert order.check(event("job.COMPLETED", 1, run_id="run2")) == EventGap("job.COMPLETED", None)
    assert order.check(event("job.COMPLETED", 2, run_id="run2")) is None
    assert order.check(event("job.FAILED", 5, run_id="run2")) is None


def test_event_order_cannot_tell_without_numbers():
    order = EventOrder()
    assert order.check(event("job.COMPLETED", None)) is None
    assert order.check(event("job.COMPLETED", None)) is None


# ----------------------------------------------------------------- plain tables

def test_plain_tables_keep_one_word_per_cell_but_the_last():
    section = Section("jobs", ("job", "state", "reason"),
                      [("a", "FAILED", "exit code 3"), ("long_name", None, None)])
    lines = section.plain().splitlines()
    assert lines[0] == "# jobs"
    assert lines[1].split() == ["JOB", "STATE", "REASON"]
    assert lines[2].split(maxsplit=2) == ["a", "FAILED", "exit code 3"]
    assert lines[3].split() == ["long_name", "-", "-"]
