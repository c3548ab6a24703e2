"""Job history on a real cluster: times and attempts in job_info, DAG runs, list_jobs, `titan jobs`,
`titan dags` and `titan status`, and all of it after the master is killed and started again."""

from __future__ import annotations

import json
import signal
import time

from titan.cluster import WorkerSpec
from titan_sdk import TitanJob

from tests.integration.test_cli import titan


def test_history_is_told_by_the_sdk_and_the_command_and_survives_a_kill(make_cluster, script, tmp_path):
    cluster = make_cluster(WorkerSpec("w1", slots=2), data_dir=str(tmp_path / "data"))
    ok, bad = script("ok.py", "import time; time.sleep(0.2)\n"), script("bad.py", "raise SystemExit(3)\n")
    before = time.time()
    with cluster.client(timeout=15) as client:
        client.submit_dag("pipe", [TitanJob("a", bad), TitanJob("b", ok, parents=["a"])])
        assert client.wait("b", timeout=60) == "CANCELLED"
        client.submit_dag("pipe", [TitanJob("a", ok), TitanJob("b", ok, parents=["a"])])
        assert client.wait("b", timeout=60) == "COMPLETED"
        info = client.job_info("a")
        assert before <= info["submitted_at"] <= info["queued_at"] <= info["started_at"] < info["ended_at"]
        assert info["run_seconds"] >= 0.2 and info["wait_seconds"] >= 0 and info["run"] == "pipe#2"
        assert [(a["attempt"], a["worker"], a["exit_code"]) for a in info["attempts"]] == [(1, "w1", 0)]
        runs = client.dag_runs("pipe")
        page = client.list_jobs(dag="pipe", limit=3)
        rest = client.list_jobs(dag="pipe", limit=3, cursor=page["next_cursor"])
    assert [(r["run"], r["outcome"], r["jobs"]) for r in runs] == [("pipe#2", "COMPLETED", 2),
                                                                    ("pipe#1", "FAILED", 2)]
    listed = [(j["job_id"], j["run"], j["state"]) for j in page["jobs"] + rest["jobs"]]
    assert listed == [("b", "pipe#2", "COMPLETED"), ("a", "pipe#2", "COMPLETED"),
                      ("b", "pipe#1", "CANCELLED"), ("a", "pipe#1", "FAILED")]
    assert rest["next_cursor"] is None

    status = titan(cluster, "status", "a")
    assert status.returncode == 0 and "started: " in status.stdout and "ran: " in status.stdout, status
    failed = titan(cluster, "jobs", "--state", "FAILED", "--since", "1h", "--json")
    assert [j["run"] for j in json.loads(failed.stdout)["jobs"]] == ["pipe#1"], failed
    dags = titan(cluster, "dags", "pipe")
    assert dags.returncode == 0 and "pipe#1" in dags.stdout and "FAILED" in dags.stdout, dags

    cluster.master.send_signal(signal.SIGKILL)
    cluster.master.wait()
    cluster.start_master()
    cluster.wait_for_workers(1, timeout=30)
    with cluster.client(timeout=15) as client:
        assert client.job_info("a") == info
        assert client.dag_runs("pipe") == runs
        again = client.list_jobs(dag="pipe")["jobs"]
    assert [(j["job_id"], j["run"], j["state"]) for j in again] == listed
