"""Artifact garbage collection on a real master (--artifact-grace): content no name points at and no job
kept runs from is removed after the grace, while content a kept job pins stays until that job is
forgotten; stats() counts what was kept and removed."""

from __future__ import annotations

import hashlib
import os
import time

import pytest

from titan.cluster import WorkerSpec
from titan_sdk import TitanJob

from tests.conftest import wait_until
from tests.integration.test_artifacts import make_project

pytestmark = pytest.mark.timeout(120)
GRACE_S = 1.0


def blobs(data_dir) -> set:
    return set(os.listdir(data_dir / "artifacts" / "blobs"))


def test_content_a_name_no_longer_points_at_is_removed_after_the_grace(make_cluster, tmp_path):
    data_dir = tmp_path / "data"
    cluster = make_cluster(WorkerSpec("w1"), data_dir=str(data_dir),
                           master_args=["--artifact-grace", f"{GRACE_S}s"])
    first, second = os.urandom(300_000), os.urandom(200_000)
    (tmp_path / "model.bin").write_bytes(first)
    with cluster.client(timeout=15) as client:
        client.upload_file(str(tmp_path / "model.bin"))
        (tmp_path / "model.bin").write_bytes(second)
        client.upload_file(str(tmp_path / "model.bin"))            # the name now points at new content
        old, new = hashlib.sha256(first).hexdigest(), hashlib.sha256(second).hexdigest()
        assert {old, new} <= blobs(data_dir)
        wait_until(lambda: old not in blobs(data_dir), timeout=30, what="the old content removed")
        assert new in blobs(data_dir)
        fetched = client.fetch_artifact("model.bin", str(tmp_path / "back.bin"))
        assert open(fetched, "rb").read() == second
        stats = client.stats()["artifacts"]
        assert (stats["blobs_kept"], stats["blobs_removed"]) == (1, 1)


def test_an_archive_a_kept_job_ran_from_stays_until_the_job_is_forgotten(make_cluster, tmp_path):
    data_dir = tmp_path / "data"
    cluster = make_cluster(WorkerSpec("w1"), data_dir=str(data_dir),
                           master_args=["--artifact-grace", f"{GRACE_S}s", "--keep-completed", "forever"])
    project = make_project(tmp_path)
    with cluster.client(timeout=15) as client:
        client.upload_project_folder(project)
        (pinned,) = blobs(data_dir)
        client.submit_dag("build", [TitanJob("step", "project.zip/src/step.py", is_archive=True)])
        assert client.wait("step", timeout=60) == "COMPLETED"
        with open(os.path.join(project, "common.py"), "a") as handle:
            handle.write("CHANGED = True\n")
        client.upload_project_folder(project)                      # project.zip re-pointed: the old is pinned
        assert len(blobs(data_dir)) == 2
        time.sleep(4 * GRACE_S + 2)                                # several sweeps past the grace
        assert pinned in blobs(data_dir)
        assert client.stats()["artifacts"]["blobs_removed"] == 0
        assert client.forget(dag="build")["forgotten"] == 1
        wait_until(lambda: pinned not in blobs(data_dir), timeout=30, what="the unpinned archive removed")
        stats = client.stats()["artifacts"]
        assert (stats["blobs_kept"], stats["blobs_removed"]) == (1, 1)
