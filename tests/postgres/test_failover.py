"""A standby master takes over through PostgreSQL: real PostgreSQL, masters and workers as processes.

Each job appends "start end" to a file named after it, so a test sees how often each job ran and when."""

from __future__ import annotations

import os
import signal
import subprocess
import textwrap
import time

import pytest

from tests.conftest import TITAN, wait_until
from tests.postgres.ha import SharedJournalCluster
from titan.core.errors import JournalUnavailable
from titan_sdk import TitanJob

pytestmark = pytest.mark.timeout(240)

JOB = textwrap.dedent("""
    import os, sys, time
    started = time.time()
    time.sleep(0.05)
    if os.environ["TITAN_JOB_ID"].endswith("end"):
        from titan_sdk import TitanClient
        with TitanClient(timeout=60) as client:
            client.store_put("finished-by", os.environ["TITAN_JOB_ID"])
    with open(os.path.join(sys.argv[1], os.environ["TITAN_JOB_ID"]), "a") as record:
        record.write(f"{started} {time.time()}\\n")
""").encode()


def two_hundred_jobs(folder: str) -> list:
    """A root, ten chains of 18 (each with a side branch at its middle), a fan-in at the end, and eight
    more leaves off the root: 200 jobs."""
    def job(job_id, parents):
        return TitanJob(job_id, "record.py", content=JOB, args=[folder], parents=parents)
    jobs = [job("root", [])]
    for chain in range(10):
        for link in range(18):
            jobs.append(job(f"c{chain}-{link}", [f"c{chain}-{link - 1}" if link else "root"]))
        jobs.append(job(f"c{chain}-side", [f"c{chain}-8"]))
    jobs += [job(f"leaf{n}", ["root"]) for n in range(8)]
    jobs.append(job("end", [f"c{chain}-17" for chain in range(10)]))
    assert len(jobs) == 200
    return jobs


def runs(folder: str) -> dict:
    """job id -> [(start, end)] of each time it ran."""
    found = {}
    for name in os.listdir(folder):
        with open(os.path.join(folder, name)) as record:
            found[name] = [tuple(map(float, line.split())) for line in record if line.strip()]
    return found


@pytest.fixture
def shared(pg_url, tmp_path):
    made = []

    def make(**options) -> SharedJournalCluster:
        cluster = SharedJournalCluster(pg_url, str(tmp_path / "logs"), **options)
        made.append(cluster)
        return cluster

    yield make
    for cluster in made:
        cluster.stop()
        for name in sorted(os.listdir(cluster.log_dir)):   # shown by pytest only when the test failed
            print(f"----- {name} (last lines)\n" + "\n".join(cluster.log(name[:-4]).splitlines()[-30:]))


def test_killing_the_leader_mid_dag_loses_no_job_and_runs_none_twice(shared, tmp_path):
    cluster = shared(masters=2).start(workers=2)
    folder = tmp_path / "ran"
    folder.mkdir()
    artifact = tmp_path / "model.bin"
    artifact.write_bytes(os.urandom(300_000))
    first_leader = cluster.leader_port()
    with cluster.client(timeout=20) as client:
        client.store_put("before", "kept")
        client.publish_artifact("model", str(artifact))
        jobs = two_hundred_jobs(str(folder))
        client.submit_dag("big", jobs)
        wait_until(lambda: len(os.listdir(folder)) >= 40, 60, "40 jobs to finish")
        completed_before = {name for name, times in runs(str(folder)).items() if times}
        cluster.masters[first_leader].kill()   # SIGKILL: no goodbye, no flush
        new_leader = cluster.wait_for_leader(exclude=first_leader)
        states = client.wait([job.job_id for job in jobs], timeout=150)   # the same client, across the takeover
        assert set(states.values()) == {"COMPLETED"}, {k: v for k, v in states.items() if v != "COMPLETED"}
        assert client.store_get("before") == "kept"
        assert client.store_get("finished-by") == "end"
        fetched = client.get_artifact("model", str(tmp_path / "fetched.bin"))
        assert open(fetched, "rb").read() == artifact.read_bytes()
        assert client.stats()["leadership"]["address"] == f"127.0.0.1:{new_leader}"
        root = client.job_info("root")   # ran under the first leader: its history came through PostgreSQL
        assert root["submitted_at"] and root["started_at"] and [a["exit_code"] for a in root["attempts"]] == [0]
        assert [(r["run"], r["outcome"], r["jobs"]) for r in client.dag_runs("big")] == [("big#1", "COMPLETED", 200)]
        assert client.stats()["journal_bytes"] > 300_000   # the artifact alone is that
    ran = runs(str(folder))
    assert set(ran) == {job.job_id for job in jobs}
    assert {name: len(times) for name, times in ran.items() if len(times) != 1} == {}, \
        f"jobs run more than once; completed before the kill: {sorted(completed_before)[:10]}..."
    for job in jobs:
        for parent in job.parents:
            assert ran[job.job_id][0][0] >= ran[parent][-1][1], f"{job.job_id} started before {parent} ended"


def test_a_leader_paused_past_its_lease_never_writes_again_and_stops(shared, tmp_path):
    cluster = shared(masters=2, lease_timeout=1.5).start(workers=1)
    first_leader = cluster.leader_port()
    paused = cluster.masters[first_leader]
    paused.send_signal(signal.SIGSTOP)
    new_leader = cluster.wait_for_leader(exclude=first_leader)
    with cluster.client(timeout=20) as client:
        client.store_put("written-by", "the new leader")
        epoch = client.stats()["leadership"]["epoch"]
        paused.send_signal(signal.SIGCONT)
        assert paused.wait(20) == 3
        assert "another master took the lease" in cluster.log(f"master-{first_leader}")
        assert epoch == 2 and cluster.leadership()["epoch"] == 2
        assert client.store_get("written-by") == "the new leader"
        client.submit_job(TitanJob("after", "after.py", content=b"print('ok')"))
        assert client.wait("after", timeout=60) == "COMPLETED"
    assert cluster.leader_port() == new_leader


def test_while_postgres_is_down_the_leader_refuses_work_saying_why_and_resumes(shared, postgres, tmp_path):
    cluster = shared(masters=1, lease_timeout=60).start(workers=1)
    with cluster.client(timeout=30) as client:
        client.store_put("k", "before")
        postgres.stop("immediate")
        try:
            wait_until(lambda: "cannot be written" in cluster.log(f"master-{cluster.ports[0]}"), 20,
                       "the master to notice")
            with pytest.raises(JournalUnavailable, match="refuses changes") as refused:
                client.store_put("k", "during")
            assert "PostgreSQL" in str(refused.value) and "Free space" not in str(refused.value)
            assert client.store_get("k") == "before"   # reads still answered
            assert client.stats()["journal_bytes"] > 0   # from memory: the size read before the outage
        finally:
            postgres.start()
        wait_until(lambda: _accepted(client, TitanJob("after", "after.py", content=b"print('ok')")), 30,
                   "the master to take work again")
        assert client.wait("after", timeout=60) == "COMPLETED"
        assert client.store_get("k") == "before"
    assert "can be written again" in cluster.log(f"master-{cluster.ports[0]}")


def _accepted(client, job) -> bool:
    try:
        client.submit_job(job)
        return True
    except JournalUnavailable:   # until the master's next try finds PostgreSQL back (every second)
        return False


def test_a_client_with_both_addresses_never_sees_the_master_unreachable_across_a_takeover(shared):
    cluster = shared(masters=2, lease_timeout=1.5).start(workers=1)
    first_leader = cluster.leader_port()
    with cluster.client(timeout=20) as client:
        for n in range(5):
            client.store_put(f"k{n}", str(n))
        cluster.masters[first_leader].kill()
        started = time.monotonic()
        for n in range(5, 40):   # each one is answered, by the old leader or the new, never unreachable
            client.store_incr("counter")
            client.store_put(f"k{n}", str(n))
        assert time.monotonic() - started < 20
        assert client.store_get("counter") == "35"
        assert [client.store_get(f"k{n}") for n in range(40)] == [str(n) for n in range(40)]


def test_titan_status_given_both_masters_says_who_leads_since_when_and_who_waits(shared):
    cluster = shared(masters=2, lease_timeout=5).start(workers=1)
    leader, standby = cluster.ports
    with cluster.client() as client:   # the leader reads who waits at each renewal, about every second
        wait_until(lambda: client.stats()["leadership"]["standbys"], 30, "the leader to see the standby")
    done = subprocess.run([TITAN, "status", "--master", cluster.hosts, "--timeout", "20"], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert f"127.0.0.1:{leader}" in done.stdout and f"127.0.0.1:{standby}" in done.stdout, done.stdout
    lines = done.stdout.splitlines()
    leader_line = next(line for line in lines if f"127.0.0.1:{leader}" in line)
    standby_line = next(line for line in lines if f"127.0.0.1:{standby}" in line)
    assert "epoch" in done.stdout.lower() and " 1 " in leader_line, done.stdout
    assert "not answering" not in done.stderr   # it found the leader at once
    assert lines.index(leader_line) < lines.index(standby_line)
