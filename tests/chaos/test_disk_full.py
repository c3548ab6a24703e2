"""A full disk under the master's journal: the master keeps running, refuses changes with a clear error,
answers reads, carries on by itself when space returns, and loses nothing it acknowledged.

The data dir is a real small tmpfs, mounted for the test (root only; skipped, saying why, elsewhere)."""

from __future__ import annotations

import os
import subprocess
import threading
import time

import pytest

from titan.cluster import WorkerSpec
from titan_sdk import JournalUnavailable, TitanClient, TitanJob
from tests.chaos.test_chaos import kill9, master_log
from tests.conftest import wait_until

DISK_BYTES = 8 * 1024 * 1024
WAIT_S = 30


@pytest.fixture
def small_disk(tmp_path):
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={DISK_BYTES}", "tmpfs", str(mount_point)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"needs to mount a small tmpfs (root): {mounted.stderr.strip()}")
    try:
        yield str(mount_point)
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], capture_output=True)


def fill(folder: str) -> str:
    """Write zeros into `folder` until the disk is full; returns the filler's path."""
    path = os.path.join(folder, "filler")
    chunk = b"\0" * 65536
    with open(path, "wb", buffering=0) as handle:
        try:
            while True:
                handle.write(chunk)
        except OSError:
            pass
        try:   # the last few bytes too
            while True:
                handle.write(b"\0")
        except OSError:
            pass
    return path


def in_thread(action) -> dict:
    outcome: dict = {}

    def run():
        try:
            outcome["value"] = action()
        except Exception as exc:   # the test's assertions report it
            outcome["error"] = exc
    outcome["thread"] = threading.Thread(target=run, daemon=True)
    outcome["thread"].start()
    return outcome


@pytest.mark.timeout(120)
def test_a_full_disk_refuses_changes_answers_reads_and_loses_nothing(small_disk, make_cluster, script, tmp_path):
    gate = str(tmp_path / "gate")
    quick = script("quick.py", "print('quick')\n")
    waiting = script("waiting.py", f"""
    import os, time
    while not os.path.exists({gate!r}):
        time.sleep(0.05)
    print('waited')
    """)
    # a script big enough that its commit must grow the journal's WAL, whatever space it holds already
    bulky = script("bulky.py", "print('bulky')\n" + "#" * 400_000 + "\n")
    cluster = make_cluster(WorkerSpec("w", slots=2), data_dir=small_disk)
    with cluster.client() as client:
        client.submit_job(TitanJob("before", quick))
        assert client.wait("before", timeout=WAIT_S) == "COMPLETED"
        client.store_put("kept", "1")
        client.submit_job(TitanJob("through", waiting))
        wait_until(lambda: client.get_job_status("through") == "RUNNING", WAIT_S, "the job to run")

        filler = fill(small_disk)
        with TitanClient(port=cluster.port, timeout=60) as patient:
            first = in_thread(lambda: patient.submit_job(TitanJob("first_write", bulky)))
            wait_until(lambda: "cannot be written" in master_log(cluster), WAIT_S, "the master to meet the full disk")
            with pytest.raises(JournalUnavailable, match="cannot write its journal"):
                client.submit_job(TitanJob("refused", quick))
            with pytest.raises(JournalUnavailable):
                client.store_put("refused", "x")
            assert client.store_get("kept") == "1"
            assert client.job_info("before")["state"] == "COMPLETED"
            assert client.stats()["jobs_by_state"]
            open(gate, "w").close()          # a job ends while nothing can be written
            time.sleep(1.0)
            assert "value" not in first and "error" not in first, "answered before it was written"
            assert cluster.master.poll() is None, "the master died on a full disk"

            os.remove(filler)                # space returns: the master carries on by itself
            first["thread"].join(WAIT_S)
            assert first.get("value") == "first_write", first
        assert client.wait("through", timeout=WAIT_S) == "COMPLETED"
        assert client.wait("first_write", timeout=WAIT_S) == "COMPLETED"
        client.submit_job(TitanJob("after", quick))
        assert client.wait("after", timeout=WAIT_S) == "COMPLETED"
        with pytest.raises(Exception):
            client.job_info("refused")

    kill9(cluster.master)                    # all that was acknowledged is on disk
    cluster.start_master()
    with cluster.client() as client:
        states = {job: client.get_job_status(job) for job in ("before", "through", "first_write", "after")}
        assert states == dict.fromkeys(states, "COMPLETED"), states
        assert client.store_get("kept") == "1" and client.store_get("refused") is None
        assert "waited" in client.fetch_logs("through")
    assert "can be written again" in master_log(cluster)
