"""Large submissions taken in over several loop turns (titan/master/intake.py) on a real master: still
all or nothing, answered after the commit that accepts them, and other clients answered meanwhile."""

from __future__ import annotations

import threading

import pytest

from titan.cluster import WorkerSpec
from titan.core.errors import InvalidDag
from titan_sdk import TitanJob

from titan import defaults

NULL_WORKER = WorkerSpec("w1", slots=200, extra_args=("--executor", "null"))
MANY = 30_000   # some hundreds of milliseconds of slices even on an idle machine


def _submit_meanwhile(cluster, name: str, jobs: list) -> dict:
    """Submit `jobs` as DAG `name` from one client while another asks the master for its stats; what
    each saw ("during": how many stats answers said a submission was being taken in)."""
    seen: dict = {"during": 0}
    submitted = threading.Event()

    def ask_until_submitted():
        with cluster.client(timeout=30) as asker:
            while not submitted.is_set():
                seen["during"] += asker.stats()["intake"]["submissions"] > 0

    asking = threading.Thread(target=ask_until_submitted)
    asking.start()
    try:
        with cluster.client(timeout=120) as client:
            try:
                seen["jobs"] = client.submit_dag(name, jobs)
            except InvalidDag as exc:
                seen["error"] = exc
    finally:
        submitted.set()
        asking.join(timeout=30)
    return seen


@pytest.mark.timeout(180)
def test_a_large_dag_with_one_bad_job_is_refused_whole_while_other_requests_are_answered(make_cluster, script):
    assert MANY > defaults.INTAKE_AT_ONCE_JOBS
    cluster = make_cluster(NULL_WORKER, master_args=["--max-submits-per-second", "1000000"])
    job = script("job.py", "pass\n")
    jobs = [TitanJob(f"j{i}", job) for i in range(MANY)] + [TitanJob("last", job, parents=["ghost"])]
    seen = _submit_meanwhile(cluster, "big", jobs)
    assert "unknown parent(s) 'ghost'" in str(seen.get("error")), seen.get("error")
    assert seen["during"] >= 3, f"only {seen['during']} requests answered while the DAG was taken in"
    with cluster.client(timeout=30) as client:
        assert client.get_job_status("j0") == "NULL" and client.get_job_status(f"j{MANY - 1}") == "NULL"
        assert client.list_jobs(dag="big")["jobs"] == []
        assert client.stats()["totals"]["submitted"] == 0


@pytest.mark.timeout(240)
def test_a_large_dag_taken_in_over_several_turns_is_admitted_whole_and_runs(make_cluster, script, tmp_path):
    cluster = make_cluster(NULL_WORKER, data_dir=str(tmp_path / "data"),
                           master_args=["--max-submits-per-second", "1000000"])
    job = script("job.py", "pass\n")
    jobs = [TitanJob(f"j{i}", job, parents=[f"j{i - 1}"] if i % 3 else []) for i in range(MANY)]
    seen = _submit_meanwhile(cluster, "big", jobs)
    assert "error" not in seen, seen.get("error")
    assert seen["jobs"] == [f"j{i}" for i in range(MANY)]   # as submitted, as a small submission answers
    assert seen["during"] >= 3, f"only {seen['during']} requests answered while the DAG was taken in"
    with cluster.client(timeout=60) as client:
        assert client.stats()["totals"]["submitted"] == MANY
        states = client.wait(["j0", "j2", f"j{MANY - 1}"], timeout=180)
        assert set(states.values()) == {"COMPLETED"}, states
        stats = client.stats()
        assert stats["turn_peaks"]["intake_slice_ms"] > 0
        # the master collects between turns only (titan/master/collector.py): a young collection once
        # GC_YOUNG_OBJECTS more objects are kept, never the middle generation; Python's own thresholds
        # (700, 10, 10) would have made hundreds of young collections and some of the middle one
        assert 0 < stats["gc"]["gen0"]["collections"] < 50 and stats["gc"]["gen1"]["collections"] == 0, stats["gc"]


@pytest.mark.timeout(120)
def test_a_cycle_in_a_large_dag_is_named_and_nothing_of_it_admitted(make_cluster, script):
    cluster = make_cluster(NULL_WORKER, master_args=["--max-submits-per-second", "1000000"])
    job = script("job.py", "pass\n")
    last_three = range(MANY - 3, MANY)   # each the parent of the one before, the first of the last
    jobs = [TitanJob(f"j{i}", job, parents=[f"j{MANY - 3 + (i + 1) % 3}"] if i in last_three else [])
            for i in range(MANY)]
    with cluster.client(timeout=120) as client:
        with pytest.raises(InvalidDag, match="has a cycle"):
            client.submit_dag("loopy", jobs)
        assert client.stats()["totals"]["submitted"] == 0
        assert client.submit_dag("loopy", [TitanJob("fine", job)]) == ["fine"]   # the name is free


@pytest.mark.timeout(120)
def test_a_retry_while_a_submission_is_taken_in_waits_for_its_one_answer(tmp_path):
    """The master's loop driven by hand, turn by turn (a real Master, its sockets bound, no peers)."""
    from titan.cluster import free_port_block
    from titan.master.config import MasterConfig
    from titan.master.loop import Master
    from titan.net import jobwire, protocol

    script = tmp_path / "null.py"
    script.write_text("pass\n")
    master = Master(MasterConfig(host="127.0.0.1", port=free_port_block("127.0.0.1", 4), data_dir=str(tmp_path)))
    try:
        specs = [TitanJob(f"j{i}", str(script)).to_spec() for i in range(5_000)]
        submit = protocol.encode({"op": "submit", "rid": "r1", "dag": "big", **jobwire.submission(specs)})

        def ask(body: bytes):
            return master._answer([body], protocol.CLIENT_OPS, master._client_request, "client", b"c", "c",
                                  (master.clients, [b"c"]))

        assert ask(submit) is None and master._intake_stats() == {"submissions": 1, "jobs": 5_000}
        master._take_in()   # a first slice
        assert ask(submit) is None and master._intake_stats()["submissions"] == 1   # the retry waits
        ping = protocol.decode_reply(ask(protocol.encode({"op": "ping", "rid": "p1"})))
        assert ping["ok"] and master._intake_waiting()   # answered between two slices
        turns = 1
        while master._intake_waiting():
            master._take_in()
            turns += 1
        assert turns > 2
        replies = [protocol.decode_reply(frames[-1]) for _, frames in master._outbox]
        assert [(r["rid"], r["ok"], len(r["result"]["jobs"])) for r in replies] == [("r1", True, 5_000)]
        master._end_turn()   # committed, then said
        assert master.scheduler.totals["submitted"] == 5_000
        again = protocol.decode_reply(ask(submit))   # a retry after the answer: the same answer, not acted on
        assert again["ok"] and len(again["result"]["jobs"]) == 5_000
        assert master.scheduler.totals["submitted"] == 5_000 and not master._intake_waiting()
    finally:
        master.close()
