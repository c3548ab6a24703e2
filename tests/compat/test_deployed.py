"""deploy_script and `titan scripts`: scripts kept on the master by file name, journaled."""

from __future__ import annotations

import pytest

from tests.integration.test_pipelines import run_titan
from titan.cluster import WorkerSpec
from titan_sdk import RequestRejected, TitanJob


def test_a_deployed_script_runs_for_a_job_that_names_only_its_file(run_original, cluster):
    code, output = run_original("deploy_scripts.py")
    assert code == 0, output
    assert output.count("deploy: DEPLOY_SUCCESS") == 2
    assert "compat_remote COMPLETED deployed worker ran with ['a', 'b']" in output
    assert "compat_clash COMPLETED the LOCAL clash.py ran" in output
    assert "refused: TitanJob script 'never_deployed.py' not found (looked for" in output
    assert "no script named 'never_deployed.py' is deployed on the master" in output
    listed = run_titan(cluster, "scripts")
    assert listed.returncode == 0, listed.stderr
    assert "remote_worker.py" in listed.stdout and "clash.py" in listed.stdout


def test_deployed_scripts_survive_a_master_restart(make_cluster, tmp_path):
    cluster = make_cluster(WorkerSpec("w1", slots=2), data_dir=str(tmp_path / "data"))
    with cluster.client(timeout=15) as client:
        client.deploy_script("kept.py", content="print('kept across the restart')\n")
    cluster.master.kill()
    cluster.master.wait(10)
    cluster.start_master()
    with cluster.client(timeout=15) as client:
        assert [entry["name"] for entry in client.deployed_scripts()] == ["kept.py"]
        client.submit_job(TitanJob("compat_kept", str(tmp_path / "not-here" / "kept.py")))
        assert client.wait("compat_kept", timeout=30) == "COMPLETED"
        assert "kept across the restart" in client.fetch_logs("compat_kept")


def test_titan_scripts_deploy_and_a_bad_name(cluster, client, originals):
    result = run_titan(cluster, "scripts", "--deploy", str(originals / "workers" / "remote_worker.py"))
    assert result.returncode == 0, result.stderr
    assert "deployed remote_worker.py" in result.stdout and "remote_worker.py" in result.stdout.splitlines()[-1]
    with pytest.raises(RequestRejected, match="plain file name"):
        client._ask("deploy_script", name="../escape.py", script=b"print(1)")
    assert [entry["name"] for entry in client.deployed_scripts()] == ["remote_worker.py"]
