"""HITL gates decided through TitanStore keys, as the original's dashboard, gate script and tools did."""

from __future__ import annotations


def test_store_keys_approve_and_reject_gates_with_events(run_original, client):
    with client.events(topics=["job.COMPLETED", "job.CANCELLED"]) as events:
        code, output = run_original("hitl_store.py")
        seen = _drain(events)
    assert code == 0, output
    assert "approved child: COMPLETED" in output
    assert "rejected child: CANCELLED / parent 'hitl-gate-compat_no_prep' CANCELLED (rejected: through " \
           "TitanStore key 'titan:hitl:status:hitl-gate-compat_no_prep')" in output
    assert "early child: COMPLETED" in output
    assert "key after resubmit: CLEARED" in output and "gate after resubmit: WAITING_APPROVAL" in output
    assert "approved with DAG- prefix: COMPLETED" in output
    reasons = {event["job_id"]: event["reason"] for event in seen if event["job_id"].startswith("hitl-gate-")}
    assert reasons["hitl-gate-compat_ok_prep"] == "approved through TitanStore key " \
                                                 "'titan:hitl:status:hitl-gate-compat_ok_prep'"
    assert reasons["hitl-gate-compat_no_prep"].startswith("rejected: through TitanStore key")


def _drain(events) -> list:
    seen = []
    while True:
        event = events.get(0.5)
        if event is None:
            return seen
        seen.append(event)


def test_a_store_key_decision_is_journaled(make_cluster, originals, tmp_path):
    import time

    from titan.cluster import WorkerSpec
    from titan_sdk import TitanJob

    cluster = make_cluster(WorkerSpec("w1", slots=2), data_dir=str(tmp_path / "data"))
    step = str(originals / "steps" / "step.py")
    with cluster.client(timeout=15) as client:
        client.submit_dag("compat_journal", [TitanJob("compat_j", step, hitl_message="ok?")])
        deadline = time.monotonic() + 30
        while client.get_job_status("hitl-gate-compat_j") != "WAITING_APPROVAL":
            assert time.monotonic() < deadline, "the gate never opened"
            time.sleep(0.1)
        client.store_put("titan:hitl:status:hitl-gate-compat_j", "APPROVED")
    cluster.master.kill()
    cluster.master.wait(10)
    cluster.start_master()
    with cluster.client(timeout=15) as client:
        info = client.job_info("hitl-gate-compat_j")
        assert info["state"] == "COMPLETED", info
        assert info["reason"] == "approved through TitanStore key 'titan:hitl:status:hitl-gate-compat_j'"
