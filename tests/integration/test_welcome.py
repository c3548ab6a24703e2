"""A worker slow to start may send a second registration before the first welcome reaches it, and so gets
two welcomes from one master. A welcome asks the worker to send again what that master may lack (results,
archive fetches): from a master that already welcomed it (the same run), nothing is lacking, and asking
again restarted archive fetches from their first byte (seen as a doubled fetch under load)."""

from __future__ import annotations

import sys
import time

import pytest

from tests.conftest import start_process, stop
from tests.integration.test_output_flood import HandMadeMaster

ARCHIVE = "ab" * 32   # a project archive the hand-made master never sends


def fetches_within(master: HandMadeMaster, seconds: float) -> list:
    """The fetch_archive requests the worker sends within `seconds` (heartbeats are answered meanwhile)."""
    fetches, until = [], time.monotonic() + seconds
    while (left := until - time.monotonic()) > 0:
        if master.router.poll(int(left * 1000)):
            fetches += [m for m in master.next_messages() if m["op"] == "fetch_archive"]
    return fetches


@pytest.mark.timeout(60)
def test_a_second_welcome_from_the_same_master_run_asks_for_nothing_again_and_a_new_run_does():
    master = HandMadeMaster()
    worker = start_process([sys.executable, "-m", "titan.worker", "--master", f"127.0.0.1:{master.port}",
                            "--name", "w1", "--heartbeat-interval", "0.2", "--master-dead-after", "30"])
    try:
        assert master.next_messages()[0]["op"] == "register"
        master.send({"op": "welcome", "run_id": "first-run"})
        master.send({"op": "dispatch", "attempt": 1, "job": {"job_id": "j", "filename": "project.zip/j.py",
                                                            "archive": ARCHIVE, "script": b""}})
        first = fetches_within(master, 2.0)
        assert [(m["sha256"], m["offset"]) for m in first] == [(ARCHIVE, 0)], first
        master.send({"op": "welcome", "run_id": "first-run"})   # the answer to a registration that crossed
        assert fetches_within(master, 1.5) == [], "a repeated welcome restarted the archive fetch"
        master.send({"op": "welcome", "run_id": "a-restarted-master"})
        again = fetches_within(master, 1.5)
        assert [(m["sha256"], m["offset"]) for m in again] == [(ARCHIVE, 0)], "a new master run lacks the fetch"
    finally:
        stop(worker)
        master.close()
