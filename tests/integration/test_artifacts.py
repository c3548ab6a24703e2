"""Project archives, artifacts and agent runs against a real cluster (master and workers as processes)."""

from __future__ import annotations

import hashlib
import os
import signal
import stat
import textwrap
import zipfile

import pytest

from titan.archives import zip_folder
from titan.cluster import WorkerSpec
from titan_sdk import TitanJob, UnknownAgentRun, UnknownArtifact

pytestmark = pytest.mark.timeout(120)


def write_files(root, files: dict) -> str:
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return str(root)


PROJECT = {
    "src/step.py": """
        import os, sys
        import helper                 # a sibling of this script
        import common                 # at the project's top level
        with open("data/input.txt") as handle:   # relative to the working directory: the project
            text = handle.read().strip()
        print(f"{helper.GREETING} {common.NAME}: {text}; cwd has src/step.py: {os.path.isfile('src/step.py')}")
        open("written-by-job.txt", "w").write("scratch")   # lands in the job's own copy
        """,
    "src/helper.py": "GREETING = 'hello from helper'\n",
    "common.py": "NAME = 'common'\n",
    "data/input.txt": "the data file\n",
}


def make_project(tmp_path, name: str = "project") -> str:
    return write_files(tmp_path / name, PROJECT)


def test_archive_job_runs_in_the_extracted_project_and_imports_its_modules(client, tmp_path):
    name = client.upload_project_folder(make_project(tmp_path))
    assert name == "project.zip"
    jobs = [TitanJob(f"step-{isolation}", "project.zip/src/step.py", is_archive=True, isolation=isolation)
            for isolation in ("fork", "process")]
    assert client.submit_dag("archive-run", jobs)
    assert client.wait([job.job_id for job in jobs], timeout=60) == {job.job_id: "COMPLETED" for job in jobs}
    for job in jobs:
        logs = client.fetch_logs(job.job_id)
        assert "hello from helper common: the data file; cwd has src/step.py: True" in logs, logs


def test_the_same_archive_uploaded_twice_is_transferred_once(client, tmp_path):
    folder = make_project(tmp_path)
    before = client.stats()["artifacts"]["bytes_received"]
    client.upload_project_folder(folder)
    sent = client.stats()["artifacts"]["bytes_received"] - before
    assert sent == len(zip_folder(folder))
    os.makedirs(os.path.join(folder, "__pycache__"))                 # caches change nothing
    open(os.path.join(folder, "__pycache__", "x.pyc"), "wb").write(b"\0")
    client.upload_project_folder(folder)
    client.upload_project_folder(folder, name="same-content.zip")
    assert client.stats()["artifacts"]["bytes_received"] - before == sent
    job = TitanJob("from-copy", "same-content.zip/src/step.py", is_archive=True)
    client.submit_job(job)
    assert client.wait(job.job_id, timeout=60) == "COMPLETED"


def test_a_worker_fetches_an_archive_once_for_all_its_jobs(make_cluster, tmp_path):
    cluster = make_cluster(WorkerSpec("only", slots=2))
    with cluster.client(timeout=15) as client:
        client.upload_project_folder(make_project(tmp_path))
        first = [TitanJob(f"s{i}", "project.zip/src/step.py", is_archive=True) for i in range(2)]
        client.submit_dag("two-at-once", first)
        assert set(client.wait([job.job_id for job in first], timeout=60).values()) == {"COMPLETED"}
        later = TitanJob("s-later", "project.zip/src/step.py", is_archive=True)
        client.submit_job(later)
        assert client.wait(later.job_id, timeout=60) == "COMPLETED"
        artifacts = client.stats()["artifacts"]
        assert artifacts["archive_fetches"] == 1
        assert artifacts["bytes_sent_to_workers"] == len(zip_folder(str(tmp_path / "project")))
        # a worker that restarts has lost its cache (a temp work dir): it asks for the archive again
        worker = cluster.worker_processes["only"]
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)
        cluster.start_worker(WorkerSpec("only", slots=2))
        after_restart = TitanJob("s-after-restart", "project.zip/src/step.py", is_archive=True)
        client.submit_job(after_restart)
        assert client.wait(after_restart.job_id, timeout=60) == "COMPLETED"
        assert client.stats()["artifacts"]["archive_fetches"] == 2


FILE, LINK = stat.S_IFREG | 0o644, stat.S_IFLNK | 0o777


@pytest.mark.parametrize("bad_entry, target, why", [
    ("../escaped.py", None, "'..' component"),
    ("/tmp/titan-absolute.py", None, "absolute path"),
    ("link", "../../../..", "symlink that points outside"),
])
def test_a_malicious_archive_fails_its_job_naming_the_entry(client, tmp_path, bad_entry, target, why):
    zip_path = tmp_path / "evil.zip"
    with zipfile.ZipFile(zip_path, "w") as archive:
        archive.writestr("run.py", "print('should never run')\n")
        info = zipfile.ZipInfo(bad_entry)
        info.external_attr = (LINK if target else FILE) << 16
        archive.writestr(info, target or "print('pwned')\n")
    client.upload_file(str(zip_path), name="evil.zip")
    job = TitanJob("evil", "evil.zip/run.py", is_archive=True)
    client.submit_job(job)
    assert client.wait(job.job_id, timeout=60) == "FAILED"
    reason = client.job_info(job.job_id)["reason"]
    assert why in reason and repr(bad_entry) in reason, reason
    assert repr(bad_entry) in client.fetch_logs(job.job_id)
    assert not os.path.exists("/tmp/titan-absolute.py")


@pytest.mark.parametrize("size", [3 * 1024 * 1024 + 7, 1024 * 1024 + 1, 0])
def test_artifacts_come_back_byte_identical(client, tmp_path, size):
    data = os.urandom(size)
    source = tmp_path / "blob.bin"
    source.write_bytes(data)
    name = client.upload_file(str(source))
    assert name == "blob.bin"
    saved = client.fetch_artifact(name, str(tmp_path / "out" / "copy.bin"))
    assert open(saved, "rb").read() == data
    (tmp_path / "folder").mkdir()
    assert open(client.fetch_artifact(name, str(tmp_path / "folder")), "rb").read() == data


PUBLISHER = """
    import hashlib, os
    from titan_sdk import TitanClient
    data = os.urandom(2 * 1024 * 1024 + 11)
    open("model.bin", "wb").write(data)
    with TitanClient() as client:
        client.publish_artifact("results/model.bin", "model.bin")
        client.store_put("published-sha", hashlib.sha256(data).hexdigest())
    """
CONSUMER = """
    import hashlib
    from titan_sdk import TitanClient
    with TitanClient() as client:
        path = client.get_artifact("results/model.bin", "got.bin")
        client.store_put("consumed-sha", hashlib.sha256(open(path, "rb").read()).hexdigest())
    """


def test_a_job_publishes_an_artifact_that_another_job_and_the_user_get(client, script, tmp_path):
    jobs = [TitanJob("publish", script("publish.py", PUBLISHER)),
            TitanJob("consume", script("consume.py", CONSUMER), parents=["publish"])]
    client.submit_dag("artifacts-between-jobs", jobs)
    assert client.wait(["publish", "consume"], timeout=60) == {"publish": "COMPLETED", "consume": "COMPLETED"}
    published = client.store_get("published-sha")
    assert client.store_get("consumed-sha") == published
    path = client.get_artifact("results/model.bin", str(tmp_path / "model.bin"))
    assert hashlib.sha256(open(path, "rb").read()).hexdigest() == published


def test_missing_artifacts_and_archives_are_named_in_typed_errors(client, tmp_path):
    with pytest.raises(UnknownArtifact, match="no artifact named 'not-there.bin'"):
        client.fetch_artifact("not-there.bin", str(tmp_path / "x"))
    assert not os.path.exists(tmp_path / "x")
    with pytest.raises(UnknownArtifact, match="job 'orphan' runs from project archive 'never.zip'"):
        client.submit_job(TitanJob("orphan", "never.zip/main.py", is_archive=True))
    with pytest.raises(FileNotFoundError, match="nowhere.bin"):
        client.upload_file(str(tmp_path / "nowhere.bin"))


def test_yaml_project_true_ships_the_folder_and_runs_in_it(client, tmp_path):
    folder = write_files(tmp_path / "pipeline", {
        **PROJECT,
        "pipeline.yaml": """
            name: shipped
            project: true
            jobs:
              - {id: first, file: src/step.py}
              - {id: second, file: tools/check.py, depends_on: [first]}
            """,
        "tools/check.py": """
            import common, os
            assert os.path.isfile("pipeline.yaml"), os.listdir(".")
            print("check sees", common.NAME)
            """,
    })
    final = client.submit_yaml(os.path.join(folder, "pipeline.yaml"), wait=True, timeout=60)
    assert final == {"first": "COMPLETED", "second": "COMPLETED"}
    assert "hello from helper common: the data file" in client.fetch_logs("first")
    assert "check sees common" in client.fetch_logs("second")
    assert client.job_info("first")["dag"] == "shipped"


PLANNER = """
    import os, sys, time
    from titan_sdk import TitanClient, TitanJob
    print("planner run id:", os.environ["TITAN_AGENT_RUN_ID"])
    with TitanClient() as client:
        follow = TitanJob("follow", sys.argv[1], parents=[os.environ["TITAN_JOB_ID"]])
        client.submit_dag("plan-followup", [follow])     # no agent_run_id: it inherits this job's
        time.sleep(1.0)
        assert client.get_job_status("follow") == "PENDING", client.get_job_status("follow")
        client.store_put("planner-finished", "yes")
    """
FOLLOW = """
    import os
    from titan_sdk import TitanClient
    with TitanClient() as client:
        print("follow saw planner", client.get_job_status("planner"), "and", client.store_get("planner-finished"))
        print("follow run id:", os.environ["TITAN_AGENT_RUN_ID"])
    """


def test_a_running_job_extends_its_dag_under_the_same_agent_run(client, script):
    with pytest.raises(UnknownAgentRun, match="agent-7"):
        client.agent_run("agent-7")
    planner = TitanJob("planner", script("planner.py", PLANNER), args=[script("follow.py", FOLLOW)])
    client.submit_dag("plan", [planner], agent_run_id="agent-7")
    assert client.wait("planner", timeout=60) == "COMPLETED", client.fetch_logs("planner")
    assert client.wait("follow", timeout=60) == "COMPLETED", client.fetch_logs("follow")
    assert "follow saw planner COMPLETED and yes" in client.fetch_logs("follow")
    assert "follow run id: agent-7" in client.fetch_logs("follow")
    run = client.agent_run("agent-7")
    assert [dag["dag"] for dag in run["dags"]] == ["plan", "plan-followup"] and run["finished"]
    assert [[job["state"] for job in dag["jobs"]] for dag in run["dags"]] == [["COMPLETED"], ["COMPLETED"]]


def test_artifacts_archives_and_agent_runs_survive_a_master_restart(make_cluster, script, tmp_path):
    cluster = make_cluster(WorkerSpec("w1", slots=2), data_dir=str(tmp_path / "data"))
    data = os.urandom(1024 * 1024 + 5)
    (tmp_path / "kept.bin").write_bytes(data)
    with cluster.client(timeout=15) as client:
        client.upload_file(str(tmp_path / "kept.bin"))
        client.upload_project_folder(make_project(tmp_path))
        client.submit_dag("before", [TitanJob("a", script("a.py", "print('a')\n"))], agent_run_id="long-run")
        assert client.wait("a", timeout=60) == "COMPLETED"
    cluster.master.send_signal(signal.SIGKILL)
    cluster.master.wait()
    cluster.start_master()
    cluster.wait_for_workers(1, timeout=30)
    with cluster.client(timeout=15) as client:
        assert open(client.fetch_artifact("kept.bin", str(tmp_path / "back.bin")), "rb").read() == data
        client.submit_dag("after", [TitanJob("b", "project.zip/src/step.py", is_archive=True)],
                          agent_run_id="long-run")
        assert client.wait("b", timeout=60) == "COMPLETED"
        assert "hello from helper" in client.fetch_logs("b")
        assert [dag["dag"] for dag in client.agent_run("long-run")["dags"]] == ["before", "after"]


def test_the_data_dir_and_everything_in_it_are_private_to_the_masters_user(make_cluster, script, tmp_path):
    """titan.db, its WAL and the artifacts hold scripts, args and logs: no other local user may read them."""
    os.chmod(tmp_path, 0o755)
    data_dir = tmp_path / "data"
    cluster = make_cluster(WorkerSpec("w1", slots=1), data_dir=str(data_dir))
    (tmp_path / "secret.bin").write_bytes(b"secret")
    with cluster.client(timeout=15) as client:
        client.upload_file(str(tmp_path / "secret.bin"))
        client.submit_job(TitanJob("a", script("a.py", "print('a')\n"), args="--password hunter2"))
        assert client.wait("a", timeout=60) == "COMPLETED"
        paths = [os.path.join(folder, name) for folder, folders, files in os.walk(data_dir)
                 for name in folders + files]
        assert {os.path.basename(p) for p in paths} >= {"titan.db", "titan.db-wal", "artifacts", "blobs"}
        too_open = {os.path.relpath(p, data_dir): oct(os.stat(p).st_mode & 0o777) for p in [str(data_dir), *paths]
                    if os.stat(p).st_mode & 0o077}
    assert not too_open, f"readable by others: {too_open}"
