"""A worker killed with SIGKILL takes its running jobs with it, and what they started: its fork server
sees the worker's end of their channel close and kills everything (jobs and pool members also die with
the server, PR_SET_PDEATHSIG), so a job re-queued elsewhere never runs twice at once. The chaos leak
check (`job_processes`) sees jobs forked from a fork server, which have their worker's command line."""

from __future__ import annotations

import os
import textwrap

import pytest

from titan.cluster import WorkerSpec
from titan_sdk import TitanJob
from tests.chaos.test_chaos import WAIT_S, chaos_cluster, job_processes, kill9_worker, read_pid, wait_gone  # noqa: F401
from tests.conftest import wait_until

# The job writes its pid, starts a double-forked daemon in a session of its own (which writes its pid),
# and sleeps.
JOB = textwrap.dedent("""
    import os, sys, time
    def write_pid(path, pid):
        with open(path + ".tmp", "w") as handle:
            handle.write(str(pid))
        os.replace(path + ".tmp", path)
    job_file, daemon_file = sys.argv[1], sys.argv[2]
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            write_pid(daemon_file, os.getpid())
            time.sleep(120)
        os._exit(0)
    write_pid(job_file, os.getpid())
    time.sleep(120)
    """)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("isolation", ["fork", "pool", "process"])
def test_a_sigkilled_worker_takes_its_jobs_and_their_daemons_with_it(chaos_cluster, tmp_path, isolation):
    cluster = chaos_cluster(WorkerSpec("doomed", slots=2))
    path = tmp_path / "lingers.py"
    path.write_text(JOB)
    job_file, daemon_file = str(tmp_path / "job.pid"), str(tmp_path / "daemon.pid")
    with cluster.client() as client:
        client.submit_job(TitanJob("lingers", str(path), args=f"{job_file} {daemon_file}", isolation=isolation))
        wait_until(lambda: os.path.exists(job_file) and os.path.exists(daemon_file), WAIT_S, "the job and its daemon")
        job_pid = read_pid(job_file)
        seen = {process.pid for process in job_processes({cluster.port})}
        assert job_pid in seen, f"the leak check does not see the {isolation} job {job_pid} (it sees {seen})"
        kill9_worker(cluster, "doomed")
        alive = wait_gone([job_pid, read_pid(daemon_file)], timeout=10)
        assert not alive, f"still running after their worker was SIGKILLed: {alive}"
