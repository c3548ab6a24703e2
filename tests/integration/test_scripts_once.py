"""A script shared by many jobs crosses each link once: the SDK sends it once per submission, the master
sends it once per worker, and a worker that lacks one asks for it again."""

from __future__ import annotations

from titan.net import jobwire
from titan_sdk import TitanJob


def test_worker_gets_a_script_once_and_can_ask_for_it_again(by_hand, script):
    cluster, worker = by_hand
    shared = script("shared.py", "print('shared')")
    with cluster.client(timeout=15) as client:
        client.submit_dag("once", [TitanJob(f"j{i}", shared, requirement="BYHAND") for i in range(3)])
        first = worker.next_message(("dispatch",))
        digest = jobwire.script_digest(b"print('shared')")
        assert first["job"]["script"] == b"print('shared')" and first["job"]["script_sha256"] == digest
        worker.finish(first)
        second = worker.next_message(("dispatch",))
        assert "script" not in second["job"] and second["job"]["script_sha256"] == digest
        worker.send({"op": "missing_script", "job_id": second["job"]["job_id"], "attempt": second["attempt"]})
        again = worker.next_message(("dispatch",))
        assert (again["job"]["job_id"], again["attempt"]) == (second["job"]["job_id"], second["attempt"])
        assert again["job"]["script"] == b"print('shared')"
        worker.finish(again)
        worker.finish(worker.next_message(("dispatch",)))
        assert set(client.wait(["j0", "j1", "j2"], timeout=20).values()) == {"COMPLETED"}


def test_sdk_sends_each_distinct_script_once_per_submission(script):
    one, other = script("one.py", "print(1)"), script("other.py", "print(2)")
    jobs = [TitanJob(f"a{i}", one) for i in range(50)] + [TitanJob("b", other)]
    fields = jobwire.submission([job.to_spec() for job in jobs])
    assert sorted(fields["scripts"].values()) == [b"print(1)", b"print(2)"]
    assert all("script" not in job and job["script_sha256"] in fields["scripts"] for job in fields["jobs"])


def test_real_workers_run_jobs_named_by_hash(client, script):
    shared = script("count.py", "import os; print('job', os.environ['TITAN_JOB_ID'])")
    ids = [f"r{i}" for i in range(6)]
    client.submit_dag("hashed", [TitanJob(job_id, shared) for job_id in ids])
    assert set(client.wait(ids, timeout=60).values()) == {"COMPLETED"}
    assert [client.fetch_logs(job_id) for job_id in ids] == [f"job {job_id}\n" for job_id in ids]
