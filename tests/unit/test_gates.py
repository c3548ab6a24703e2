"""Human-in-the-loop gates: hitl_message adds hitl-gate-<job> after a job; its children wait for a person."""

from __future__ import annotations

import pytest

from tests.unit.sim import Sim, dispatched_ids, events, spec

from titan.core.errors import GateError, UnknownJob
from titan.core.jobs import GATE_JOB_TYPE, JobState

W, C, X, F, P = (JobState.WAITING_APPROVAL, JobState.COMPLETED, JobState.CANCELLED, JobState.FAILED,
                 JobState.PENDING)


def gated_pipeline(max_wait: float = 60.0) -> Sim:
    sim = Sim()
    sim.join("w1", slots=2)
    sim.submit(spec("train", hitl_message="check the loss curve", max_wait_seconds=max_wait),
               spec("deploy", ["train"]), spec("notify", ["deploy"]), spec("report", ["train"]), dag="release")
    return sim


def state(sim: Sim, job_id: str) -> JobState:
    return sim.s.jobs[job_id].state


def test_gate_is_added_after_the_job_and_children_wait_for_it():
    sim = gated_pipeline()
    gate = sim.s.jobs["hitl-gate-train"]
    assert gate.spec.job_type == GATE_JOB_TYPE and gate.spec.parents == ("train",) and gate.dag == "release"
    assert sim.s.jobs["deploy"].spec.parents == ("hitl-gate-train",)
    assert sim.s.jobs["report"].spec.parents == ("hitl-gate-train",)
    effects = sim.finish("train")
    assert state(sim, "hitl-gate-train") == W and sim.s.jobs["hitl-gate-train"].reason == "check the loss curve"
    assert dispatched_ids(effects) == [], "nothing below the gate may start before approval"
    assert [e.body["job_id"] for e in events(effects, "job.WAITING_APPROVAL")] == ["hitl-gate-train"]
    assert not sim.s.workers["w1"].running, "a gate occupies no worker slot"


def test_approve_releases_the_children():
    sim = gated_pipeline()
    sim.finish("train")
    effects = sim._step(sim.s.approve, "hitl-gate-train")
    assert state(sim, "hitl-gate-train") == C and sim.s.jobs["hitl-gate-train"].reason == "approved"
    assert sorted(dispatched_ids(effects)) == ["deploy", "report"]


def test_reject_cancels_everything_below_with_the_reason():
    sim = gated_pipeline()
    sim.finish("train")
    sim._step(sim.s.reject, "hitl-gate-train", "loss diverged")
    assert state(sim, "hitl-gate-train") == X and sim.s.jobs["hitl-gate-train"].reason == "rejected: loss diverged"
    assert {state(sim, j) for j in ("deploy", "notify", "report")} == {X}
    assert sim.s.jobs["deploy"].reason == "parent 'hitl-gate-train' CANCELLED (rejected: loss diverged)"
    assert state(sim, "train") == C


def test_no_decision_in_time_fails_the_gate():
    sim = gated_pipeline(max_wait=30.0)
    sim.now = 10.0
    sim.finish("train")
    assert sim.s.next_deadline() == pytest.approx(40.0)
    sim.tick(39.0)
    assert state(sim, "hitl-gate-train") == W
    sim.tick(40.5)
    assert state(sim, "hitl-gate-train") == F and "no decision within 30s" in sim.s.jobs["hitl-gate-train"].reason
    assert state(sim, "deploy") == X
    assert sim.s.jobs["deploy"].reason == "parent 'hitl-gate-train' FAILED (no decision within 30s)"


def test_approve_and_reject_refuse_what_is_not_a_waiting_gate():
    sim = gated_pipeline()
    with pytest.raises(GateError, match="not waiting"):
        sim._step(sim.s.approve, "hitl-gate-train")      # its job has not completed yet
    with pytest.raises(GateError, match="a job, not a gate"):
        sim._step(sim.s.approve, "train")
    with pytest.raises(UnknownJob):
        sim._step(sim.s.reject, "hitl-gate-nothing", "")
    sim.finish("train")
    sim._step(sim.s.approve, "hitl-gate-train")
    with pytest.raises(GateError, match="COMPLETED"):
        sim._step(sim.s.reject, "hitl-gate-train", "too late")


def test_failed_job_cancels_its_gate_and_cancel_reaches_a_waiting_gate():
    sim = gated_pipeline()
    sim.finish("train", 1)
    assert state(sim, "hitl-gate-train") == X and state(sim, "deploy") == X
    other = gated_pipeline()
    other.finish("train")
    other.cancel("hitl-gate-train")
    assert state(other, "hitl-gate-train") == X and state(other, "report") == X


def test_dag_finishes_only_after_the_gate_and_its_children():
    sim = gated_pipeline()
    sim.finish("train")
    assert not events(sim.log, "dag.finished")
    sim._step(sim.s.approve, "hitl-gate-train")
    sim.finish("deploy")
    sim.finish("report")
    sim.finish("notify")
    (finished,) = events(sim.log, "dag.finished")
    assert finished.body["counts"] == {"COMPLETED": 5}


def test_waiting_gate_survives_a_restore():
    sim = gated_pipeline(max_wait=30.0)
    sim.finish("train")
    runs = list(sim.s.jobs.values())
    restored = Sim()
    restored.now = 100.0
    restored._step(restored.s.restore, runs, {"release": list(sim.s.dags["release"])})
    assert state(restored, "hitl-gate-train") == W and state(restored, "deploy") == P
    assert restored.s.next_deadline() == pytest.approx(130.0)
    restored.join("w1", slots=2)
    effects = restored._step(restored.s.approve, "hitl-gate-train")
    assert sorted(dispatched_ids(effects)) == ["deploy", "report"]


def test_a_child_submitted_later_waits_for_its_parents_gate():
    sim = gated_pipeline()
    sim.finish("train")
    sim.submit(spec("audit", ["train"]))                   # its own submission, after the gate opened
    assert sim.s.jobs["audit"].spec.parents == ("hitl-gate-train",) and state(sim, "audit") == P
    sim._step(sim.s.approve, "hitl-gate-train")
    assert state(sim, "audit") in (JobState.QUEUED, JobState.RUNNING)   # released with deploy and report


def test_a_child_submitted_after_a_rejection_is_cancelled_with_the_decision():
    sim = gated_pipeline()
    sim.finish("train")
    sim._step(sim.s.reject, "hitl-gate-train", "not today")
    sim.submit(spec("late", ["train"]))
    assert state(sim, "late") == X
    assert sim.s.jobs["late"].reason == "parent 'hitl-gate-train' CANCELLED (rejected: not today)"


def test_a_rerun_of_a_gated_job_without_a_gate_is_not_wired_to_the_old_gate():
    sim = gated_pipeline()
    sim.finish("train")
    sim._step(sim.s.approve, "hitl-gate-train")
    for job_id in ("deploy", "report"):
        sim.finish(job_id)
    sim.finish("notify")
    sim.submit(spec("train"))                              # the same id again, this time without a gate
    sim.submit(spec("after", ["train"]))
    assert sim.s.jobs["after"].spec.parents == ("train",)


@pytest.mark.parametrize("early, gate_state, reason", [
    ("APPROVED", C, "approved (through TitanStore, before the gate opened)"),
    (" rejected ", X, "rejected: through TitanStore, before the gate opened"),
    ("CLEARED", W, "check the loss curve"),
    (None, W, "check the loss curve"),
])
def test_a_decision_made_before_the_gate_opens_is_taken_when_it_opens(early, gate_state, reason):
    sim = gated_pipeline()
    asked = []
    sim.s.decision_made_early = lambda gate: asked.append(gate) or early
    effects = sim.finish("train")
    assert asked == ["hitl-gate-train"]
    assert state(sim, "hitl-gate-train") == gate_state and sim.s.jobs["hitl-gate-train"].reason == reason
    assert sorted(dispatched_ids(effects)) == (["deploy", "report"] if gate_state == C else [])


def test_status_keys_name_their_gate_and_only_decisions_count():
    from titan.core.gates import decision_of, gate_of_status_key, status_key

    assert gate_of_status_key(status_key("hitl-gate-x")) == "hitl-gate-x"
    assert gate_of_status_key("titan:hitl:other") is None
    assert [decision_of(v) for v in ("APPROVED", "approved\n", "REJECTED", "CLEARED", "", None)] == \
        ["APPROVED", "APPROVED", "REJECTED", None, None, None]
