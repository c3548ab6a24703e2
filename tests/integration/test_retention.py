"""Forgetting on a real master: --keep-completed / --keep-failed, what a forgotten job answers, stats(),
`titan forget`, and a master killed (-9) in the middle of cleaning that loses nothing it was to keep."""

from __future__ import annotations

import signal
import sqlite3
import time

import pytest

from titan.cluster import WorkerSpec
from titan.core.errors import UnknownJob
from titan_sdk import TitanJob

from tests.conftest import wait_until
from tests.integration.test_cli import titan

NULL_WORKER = WorkerSpec("w1", slots=50, extra_args=("--executor", "null"))


def test_ended_jobs_are_forgotten_after_their_keep_time_and_say_so(make_cluster, script, tmp_path):
    cluster = make_cluster(NULL_WORKER, data_dir=str(tmp_path / "data"),
                           master_args=["--keep-completed", "1s", "--keep-failed", "forever"])
    job = script("job.py", "print('x')\n")
    with cluster.client(timeout=15) as client:
        client.submit_job(TitanJob("done", job))
        client.submit_job(TitanJob("gate-parent", job, hitl_message="go on?"))
        client.submit_dag("pipe", [TitanJob("p1", job)])
        assert client.wait(["done", "p1", "gate-parent"], timeout=60) == {
            "done": "COMPLETED", "p1": "COMPLETED", "gate-parent": "COMPLETED"}
        wait_until(lambda: client.get_job_status("done") == "NULL", timeout=30, what="'done' forgotten")
        with pytest.raises(UnknownJob, match="job 'done' was forgotten: it ended COMPLETED"):
            client.job_info("done")
        time.sleep(1.5)
        assert client.get_job_status("p1") == "COMPLETED"             # the latest run of its DAG
        assert client.get_job_status("gate-parent") == "COMPLETED"    # parent of a gate awaiting a decision
        assert client.job_info("hitl-gate-gate-parent")["state"] == "WAITING_APPROVAL"
        stats = client.stats()
        assert stats["jobs_forgotten"] >= 1 and stats["jobs_kept"] == 3 and stats["journal_bytes"] > 0
        assert stats["last_cleaning"]["forgotten"] >= 1
        forgot = titan(cluster, "forget", "--dag", "pipe")
        assert forgot.returncode == 0 and "forgot 1 jobs of DAG pipe" in forgot.stdout, forgot
        assert client.get_job_status("p1") == "NULL"
        assert client.list_jobs(dag="pipe")["jobs"] == []


def test_a_master_killed_while_it_cleans_keeps_what_it_was_to_keep(make_cluster, script, tmp_path):
    data = tmp_path / "data"
    cluster = make_cluster(NULL_WORKER, data_dir=str(data), master_args=["--keep-completed", "2s", "--max-submits-per-second", "100000"])
    job = script("job.py", "print('x')\n")
    many = [f"j{i}" for i in range(2_000)]
    kept = ["k1", "k2", "parent", "child"]
    with cluster.client(timeout=30) as client:
        client.submit_dag("keep", [TitanJob("k1", job), TitanJob("k2", job, parents=["k1"])])
        client.submit_job(TitanJob("parent", job))
        assert client.wait("parent", timeout=60) == "COMPLETED"
        client.submit_job(TitanJob("child", job, parents=["parent"], requirement="GPU"))   # no GPU worker
        assert client.wait("k2", timeout=60) == "COMPLETED"
        for job_id in many:   # lone jobs: nothing keeps them past --keep-completed
            client.submit_job(TitanJob(job_id, job))
        wait_until(lambda: (client.stats()["last_cleaning"] or {}).get("forgotten"), timeout=60, what="cleaning")
    cluster.master.send_signal(signal.SIGKILL)
    cluster.master.wait()
    cluster.start_master()
    cluster.wait_for_workers(1, timeout=30)
    with cluster.client(timeout=30) as client:
        assert [client.get_job_status(j) for j in kept] == ["COMPLETED", "COMPLETED", "COMPLETED", "QUEUED"]
        assert client.dag_status("keep")["finished"]
        wait_until(lambda: client.stats()["jobs_kept"] == len(kept), timeout=60, what="the rest forgotten")
        assert {client.get_job_status(j) for j in many[::97]} == {"NULL"}
    cluster.stop()
    db = sqlite3.connect(str(data / "titan.db"))
    specs = sorted(job_id for (job_id,) in db.execute("SELECT job_id FROM job_specs"))
    states = sorted(job_id for (job_id,) in db.execute("SELECT job_id FROM job_states"))
    (mode,) = db.execute("PRAGMA auto_vacuum").fetchone()
    db.close()
    assert specs == sorted(kept) and set(states) <= set(kept) and mode == 2


def _journaled_replies(data) -> list:
    """The job ids each reply kept in a stopped master's journal names."""
    from titan.master.replies import named_jobs
    from titan.net import protocol
    db = sqlite3.connect(str(data / "titan.db"))
    replies = [named_jobs(protocol.decode_reply(reply)["result"]) for (reply,) in db.execute("SELECT reply FROM replies")]
    db.close()
    return sorted(replies)


def test_a_forgotten_job_takes_its_cached_replies_along_and_wait_still_says_how_it_ended(make_cluster, script,
                                                                                          tmp_path):
    """Replies name runs; a reply goes with the last run it names, also one loaded after a restart."""
    data = tmp_path / "data"
    cluster = make_cluster(NULL_WORKER, data_dir=str(data), master_args=["--keep-completed", "1h"])
    job = script("job.py", "print('x')\n")
    with cluster.client(timeout=15) as client:
        client.submit_dag("pair", [TitanJob("a", job), TitanJob("b", job)])
        client.submit_job(TitanJob("parent", job))
        assert client.wait(["a", "b", "parent"], timeout=60) == {"a": "COMPLETED", "b": "COMPLETED",
                                                                  "parent": "COMPLETED"}
        client.submit_job(TitanJob("child", job, parents=["parent"], requirement="GPU"))   # keeps its parent
        client.submit_dag("pair", [TitanJob("c", job)])   # run 2: run 1 (a, b) may now be forgotten
        assert client.wait("c", timeout=60) == "COMPLETED"
    cluster.stop()
    assert _journaled_replies(data) == [["a", "b"], ["c"], ["child"], ["parent"]]
    cluster.master_args = ["--keep-completed", "1s"]
    cluster.start()
    with cluster.client(timeout=15) as client:
        wait_until(lambda: client.get_job_status("b") == "NULL", timeout=30, what="run 1 of 'pair' forgotten")
        assert client.wait(["a", "b"], timeout=10) == {"a": "COMPLETED", "b": "COMPLETED"}
        with pytest.raises(UnknownJob, match="never submitted, or ended and forgotten long ago"):
            client.wait("never-submitted", timeout=10)
    cluster.stop()
    assert _journaled_replies(data) == [["c"], ["child"], ["parent"]]


@pytest.mark.timeout(240)
def test_forgetting_thousands_at_once_spends_a_few_ms_per_turn_and_still_keeps_up(make_cluster, script, tmp_path):
    """CLEANING_TURN_BUDGET_S is a cap on all of one loop turn's forgetting (memory and journal), and
    forgetting still catches up: the turns come at once while it is behind."""
    from titan import defaults
    cluster = make_cluster(WorkerSpec("w1", slots=200, extra_args=("--executor", "null")),
                           data_dir=str(tmp_path / "data"),
                           master_args=["--keep-completed", "1s", "--max-submits-per-second", "1000000"])
    job = script("job.py", "pass\n")
    with cluster.client(timeout=120) as client:
        for wave in range(2):   # the second run of the DAG lets the first (10,000 jobs) be forgotten
            jobs = [TitanJob(f"j{i}", job) for i in range(10_000)]
            client.submit_dag("waves", jobs)
            assert set(client.wait([j.job_id for j in jobs], timeout=180).values()) == {"COMPLETED"}
        wait_until(lambda: client.stats()["jobs_forgotten"] >= 10_000, timeout=60, what="the first run forgotten")
        stats = client.stats()
    cap_ms = defaults.CLEANING_TURN_BUDGET_S * 1000
    # A step is sized from what the ones before cost, its journal share known only once committed: some
    # overshoot, never the tens of milliseconds a turn spent when its cap grew with the turn's other work.
    assert 0 < stats["longest_cleaning_ms"] <= 3 * cap_ms, stats["longest_cleaning_ms"]
    assert stats["longest_cleaning_step_ms"] <= 3 * cap_ms, stats["longest_cleaning_step_ms"]
    assert stats["jobs_kept"] == 10_000 and stats["cleaning_lag_s"] < 5, stats
