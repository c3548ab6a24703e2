"""Job ids and DAG names from a client that skips the SDK's checks, against a real master and worker:
control characters and huge ids are refused naming the field; a DAG's shared folder is its own, never
the worker's work root, and two DAG names never share one."""

from __future__ import annotations

import os

import pytest

from titan import defaults
from titan.cluster import WorkerSpec
from titan.core.jobs import JobSpec
from titan.net import jobwire
from titan_sdk import TitanJob

WAIT_S = 30


def submit_unchecked(client, dag, job_id: str, script: bytes = b"print(1)"):
    """A submit as a client without the SDK's checks sends it (the master must not rely on them)."""
    spec = JobSpec(job_id=job_id, filename="job.py", script=script)
    return client._ask("submit", dag=dag, **jobwire.submission([spec]))


@pytest.mark.parametrize("job_id", ["a\x00b", "x\x1b[2J\x1b[31mred", "job\nINFO forged", "y" * 100_000])
def test_master_refuses_a_hostile_job_id_naming_the_field(client, job_id):
    with pytest.raises(Exception) as refused:
        submit_unchecked(client, None, job_id)
    message = str(refused.value)
    assert "job_id" in message and ("control character" in message or "at most" in message), message
    assert len(message) < 400


@pytest.mark.parametrize("dag", ["dag\x1b]0;owned\x07", "d" * (defaults.MAX_ID_CHARS + 1)])
def test_master_refuses_a_hostile_dag_name(client, dag):
    with pytest.raises(Exception, match="DAG name"):
        submit_unchecked(client, dag, "fine")


def test_dotdot_dag_gets_a_folder_of_its_own_and_names_never_share_one(make_cluster, tmp_path, script):
    work_root = tmp_path / "work"
    work_root.mkdir()
    cluster = make_cluster(WorkerSpec("w1", slots=2, extra_args=("--work-dir", str(work_root))))
    where = script("where.py", "import os; print(os.environ['TITAN_DAG_DIR'])")
    names = {"..": "up", "a b": "space", "a_b": "underscore", "DAG-x": "plain"}
    with cluster.client(timeout=15) as client:
        for dag, job in names.items():
            client.submit_dag(dag, [TitanJob(job, where)])
        assert set(client.wait(list(names.values()), timeout=WAIT_S).values()) == {"COMPLETED"}
        folders = {dag: os.path.realpath(client.fetch_logs(job).strip()) for dag, job in names.items()}
    dags_root = os.path.realpath(work_root / "dags")
    assert all(os.path.dirname(folder) == dags_root for folder in folders.values()), folders
    assert len(set(folders.values())) == len(names), folders
    assert os.path.basename(folders["DAG-x"]) == "DAG-x"   # an ordinary name keeps its folder name
