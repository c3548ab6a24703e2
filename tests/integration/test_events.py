"""The event stream: topic filtering (the master skips events nobody subscribed to), sequence numbers."""

from __future__ import annotations

import socket
import struct
import time
from collections import defaultdict

import psutil
import pytest

from tests.integration.test_bad_input import ZMTP_GREETING, _zmtp_ready
from titan import defaults
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


def test_a_states_snapshot_answers_each_id_as_it_was_spelt(client, script):
    """wait()'s snapshot (the "states" request, built in one pass): the original's 'DAG-<id>' spelling
    finds the job, an id never submitted is None, and it says which event it reflects."""
    ok = script("ok.py", "print('ok')")
    client.submit_job(TitanJob("snap", ok))
    assert client.wait("snap", timeout=30) == "COMPLETED"
    snapshot = client._ask("states", job_ids=["snap", "DAG-snap", "never-submitted"])
    assert snapshot["states"] == {"snap": "COMPLETED", "DAG-snap": "COMPLETED", "never-submitted": None}
    assert snapshot["run_id"] == client.ping()["run_id"] and snapshot["seq"] == client.ping()["seq"] > 0


HUGE_PREFIX_BYTES = 4 * 1024 * 1024   # 64 MiB took a master from 43 MB to 5.9 GB; 4 MiB is enough to see it


def test_a_huge_subscription_costs_the_master_nothing_and_others_keep_their_events(cluster, client, script):
    """Sent over raw TCP: a SUB socket of our own would build (and crash tearing down) the same deep trie."""
    master = psutil.Process(cluster.master.pid)
    before = master.memory_info().rss
    subscription = b"\x01" + b"j" * HUGE_PREFIX_BYTES
    with socket.create_connection((cluster.host, cluster.port + defaults.EVENTS_PORT_OFFSET), timeout=10) as raw:
        raw.sendall(ZMTP_GREETING + _zmtp_ready(b"SUB") + b"\x02" + struct.pack(">Q", len(subscription)))
        try:
            raw.sendall(subscription)
        except ConnectionError:
            pass   # the master hung up part way through: what it should do
        time.sleep(2.0)   # time for the master to take it in, if it would
        grown = master.memory_info().rss - before
    assert cluster.master.poll() is None, "the master died"
    assert grown < 20 * 1024 * 1024, f"the master grew by {grown / 2 ** 20:.0f} MiB"
    ok = script("ok.py", "print('ok')")
    with client.events(topics=["job.COMPLETED"]) as events:
        client.submit_job(TitanJob("still", ok))
        assert collect(events, 1)[0]["job_id"] == "still"


def test_the_sdk_refuses_an_over_long_topic_prefix_naming_the_limit(client):
    with pytest.raises(ValueError, match=f"over the {defaults.MAX_EVENT_PREFIX_BYTES}-byte limit"):
        client.events(topics=["job." + "x" * defaults.MAX_EVENT_PREFIX_BYTES])
