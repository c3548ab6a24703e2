"""Human-in-the-loop gates: a job with a `hitl_message` gets a gate after it, and its children wait for
the gate instead of the job. The gate waits (WAITING_APPROVAL, on no worker) until someone approves or
rejects it, or fails after the job's `max_wait_seconds`.

As in the original, a gate can also be decided through TitanStore: APPROVED or REJECTED put under
`titan:hitl:status:<gate id>` decides it as approve/reject would. A decision put before the gate opens
(its job still running) is taken when it opens; the key is reset to CLEARED when the gate is submitted,
so a decision left from an earlier run of the same gate does not decide the new one."""

from __future__ import annotations

import dataclasses
from typing import Callable, List, Optional, Sequence

from titan.core import timers
from titan.core.errors import GateError
from titan.core.jobs import GATE_JOB_TYPE, JobRun, JobSpec, JobState, gate_id


def add_gates(specs: Sequence[JobSpec], gated_before: Callable[[str], bool] = lambda job_id: False) -> List[JobSpec]:
    """The submission with a gate after every job that has a hitl_message, its children re-wired; a
    child of a job submitted earlier with a gate (`gated_before`) waits for that gate too."""
    gated = {spec.job_id for spec in specs if spec.hitl_message and spec.job_type != GATE_JOB_TYPE}
    own = {spec.job_id for spec in specs}
    waits_on_gate = gated | {p for spec in specs for p in spec.parents if p not in own and gated_before(p)}
    if not waits_on_gate:
        return list(specs)
    result = []
    for spec in specs:
        parents = tuple(gate_id(p) if p in waits_on_gate else p for p in spec.parents)
        result.append(dataclasses.replace(spec, parents=parents) if parents != spec.parents else spec)
        if spec.job_id in gated:
            result.append(JobSpec(job_id=gate_id(spec.job_id), filename="", job_type=GATE_JOB_TYPE,
                                  parents=(spec.job_id,), hitl_message=spec.hitl_message,
                                  max_wait_seconds=spec.max_wait_seconds, priority=spec.priority))
    return result


def is_gate(spec: JobSpec) -> bool:
    return spec.job_type == GATE_JOB_TYPE


STATUS_KEY_PREFIX = "titan:hitl:status:"
APPROVED, REJECTED, CLEARED = "APPROVED", "REJECTED", "CLEARED"


def status_key(gate: str) -> str:
    return STATUS_KEY_PREFIX + gate


def gate_of_status_key(key: str) -> Optional[str]:
    """The gate a TitanStore key decides, or None for any other key."""
    return key[len(STATUS_KEY_PREFIX):] if key.startswith(STATUS_KEY_PREFIX) else None


def decision_of(value: Optional[str]) -> Optional[str]:
    """APPROVED or REJECTED (any case, spaces around ignored), else None (e.g. CLEARED)."""
    decision = (value or "").strip().upper() if isinstance(value, str) else ""
    return decision if decision in (APPROVED, REJECTED) else None


class SchedulerGates:
    """Mixed into Scheduler: opening a gate and the decisions on it."""

    def _open_gate(self, run: JobRun, now: float) -> None:
        self._transition(run, JobState.WAITING_APPROVAL, run.spec.hitl_message)
        self._deadlines.add(now + run.spec.max_wait_seconds, timers.GATE, run.seq, run.job_id)
        decision = decision_of(self.decision_made_early(run.job_id))
        if decision == APPROVED:
            self._approve_gate(run, now, "approved (through TitanStore, before the gate opened)")
        elif decision == REJECTED:
            self._cancel_tree(run, "rejected: through TitanStore, before the gate opened", now)

    def approve(self, gate: str, now: float, reason: str = "approved") -> list:
        self._at(now)
        self._approve_gate(self._waiting_gate(gate), now, reason)
        self._schedule(now)
        return self._take_effects()

    def _approve_gate(self, run: JobRun, now: float, reason: str) -> None:
        self._transition(run, JobState.COMPLETED, reason)
        self._settle_children(run, now)

    def reject(self, gate: str, reason: str, now: float) -> list:
        self._at(now)
        run = self._waiting_gate(gate)
        self._cancel_tree(run, f"rejected: {reason}" if reason else "rejected", now)
        self._schedule(now)
        return self._take_effects()

    def _waiting_gate(self, gate: str) -> JobRun:
        run = self.job(gate)
        if not is_gate(run.spec):
            raise GateError(f"{gate!r} is a job, not a gate; gates are named hitl-gate-<job id>", gate=gate)
        if run.state != JobState.WAITING_APPROVAL:
            raise GateError(f"gate {gate!r} is {run.state.value}, not waiting for a decision", gate=gate)
        return run
