"""The event stream: topic filtering (the master skips events nobody subscribed to), sequence numbers."""

from __future__ import annotations

from collections import defaultdict

from titan_sdk import TitanJob


def collect(events, count: int, timeout: float = 30.0) -> list:
    seen = []
    while len(seen) < count:
        event = events.get(timeout)
        assert event is not None, f"only {len(seen)} of {count} events arrived: {seen}"
        seen.append(event)
    return seen


def test_each_subscriber_gets_its_topics_with_contiguous_topic_numbers(client, script):
    ok = script("ok.py", "print('ok')")
    with client.events(topics=["job.RUNNING"]) as running, client.events(topics=["job."]) as every_job:
        client.submit_dag("seq", [TitanJob(f"j{i}", ok) for i in range(5)])
        running_events = collect(running, 5)
        job_events = collect(every_job, 20)   # PENDING, QUEUED, RUNNING, COMPLETED for each
    assert {e["topic"] for e in running_events} == {"job.RUNNING"}
    by_topic = defaultdict(list)
    for event in job_events:
        by_topic[event["topic"]].append(event)
    assert sorted(by_topic) == ["job.COMPLETED", "job.PENDING", "job.QUEUED", "job.RUNNING"]
    for topic, events in by_topic.items():
        numbers = [e["topic_seq"] for e in events]
        assert numbers == list(range(numbers[0], numbers[0] + len(numbers))), (topic, numbers)
    sequence = [e["seq"] for e in job_events]
    assert sequence == sorted(sequence) and len(set(sequence)) == len(sequence)
    assert [e["seq"] for e in running_events] == [e["seq"] for e in by_topic["job.RUNNING"]]


def test_a_topic_nobody_wanted_reaches_a_later_subscriber(client, script):
    """When the last subscriber of a topic leaves, the master stops encoding it; a new one brings it back."""
    ok = script("ok.py", "print('ok')")
    with client.events(topics=["job.QUEUED"]) as first:
        client.submit_job(TitanJob("before", ok))
        assert collect(first, 1)[0]["job_id"] == "before"
    assert client.wait("before", timeout=30) == "COMPLETED"
    with client.events(topics=["job.QUEUED"]) as second:
        client.submit_job(TitanJob("after", ok))
        event = collect(second, 1)[0]
    assert event["job_id"] == "after" and event["topic"] == "job.QUEUED"
