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

from titan.core.jobs import GATE_JOB_TYPE, JobSpec, gate_id


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
