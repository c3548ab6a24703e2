"""Where jobs run: affinity to a parent's worker, and the DAG folder its jobs share there."""

from __future__ import annotations

from titan.cluster import WorkerSpec
from titan_sdk import TitanJob

WAIT_S = 30


def test_affinity_child_reads_its_parents_file_from_the_dag_folder(make_cluster, script):
    cluster = make_cluster(WorkerSpec("a", slots=2), WorkerSpec("b", slots=2), WorkerSpec("c", slots=2))
    writer = script("writer.py", """
        import os
        with open(os.path.join(os.environ["TITAN_DAG_DIR"], "model.bin"), "w") as f:
            f.write("weights from " + os.environ["TITAN_WORKER_ID"])
        """)
    reader = script("reader.py", """
        import os
        print(open(os.path.join(os.environ["TITAN_DAG_DIR"], "model.bin")).read(), os.environ["TITAN_WORKER_ID"])
        """)
    with cluster.client() as client:
        jobs = [TitanJob("train", writer)]
        jobs += [TitanJob(f"eval_{i}", reader, parents=["train"], affinity=True) for i in range(4)]
        client.submit_dag("pinned", jobs)
        assert set(client.wait([job.job_id for job in jobs], timeout=WAIT_S).values()) == {"COMPLETED"}
        trained_on = client.job_info("train")["worker"]
        for i in range(4):
            assert client.fetch_logs(f"eval_{i}").split() == ["weights", "from", trained_on, trained_on]
            assert client.job_info(f"eval_{i}")["note"] is None


def test_dag_folder_is_per_dag_and_every_job_has_one(client, script):
    path = script("where.py", "import os; print(os.environ['TITAN_DAG_DIR'])")
    client.submit_dag("first", [TitanJob("f1", path, requirement="GPU"), TitanJob("f2", path, requirement="GPU")])
    client.submit_dag("second", [TitanJob("s1", path, requirement="GPU")])
    client.submit_job(TitanJob("lonely", path))
    assert set(client.wait(["f1", "f2", "s1", "lonely"], timeout=WAIT_S).values()) == {"COMPLETED"}
    first = {client.fetch_logs(job).strip() for job in ("f1", "f2")}
    second = client.fetch_logs("s1").strip()
    assert len(first) == 1 and second not in first and first.pop().endswith("first")
    assert client.fetch_logs("lonely").strip()
