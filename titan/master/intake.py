"""Large submissions taken in over several loop turns, so that one of 10,000 jobs does not hold the
master for a whole turn: its jobs are read from the wire, checked, and the DAG validated and ordered in
slices of INTAKE_SLICE_S, the loop serving other messages between slices; then it is admitted in one
turn, whole or not at all, and answered after the commit that accepts it (as any change). A submission
of at most INTAKE_AT_ONCE_JOBS jobs is taken in at once. Mixed into Master (titan/master/loop.py)."""

from __future__ import annotations

import logging
import time
from collections import deque
from typing import Optional

from titan import defaults
from titan.core.errors import JournalUnavailable, TitanError
from titan.net import protocol
from titan.net.protocol import ProtocolError

log = logging.getLogger("titan.master")

DEFERRED = object()   # what a request handler returns when its answer comes in a later turn
PARSE_CHUNK = 100     # jobs read from the wire between two looks at the clock


class PendingSubmission:
    """A submission being taken in: where its answer goes, and how far it has got."""

    __slots__ = ("key", "rid", "reply_to", "dag", "raw_jobs", "scripts", "agent_run_id", "specs", "steps",
                 "ordered")

    def __init__(self, key: str, rid, reply_to: tuple, dag: Optional[str], raw_jobs: list, scripts: dict,
                 agent_run_id: Optional[str]):
        self.key, self.rid, self.reply_to = key, rid, reply_to
        self.dag, self.raw_jobs, self.scripts, self.agent_run_id = dag, raw_jobs, scripts, agent_run_id
        self.specs: list = []          # read from the wire so far
        self.steps = None              # the DAG's validation (a generator), once every job is read
        self.ordered: Optional[list] = None


class Intake:
    """Needs self.scheduler, self.committer, self.journal, self.replies, self._reply, self._runs_named and
    RequestHandlers' _check_submission, _specs_from_wire, _finish_specs and _admit_submission."""

    def _init_intake(self) -> None:
        self._intake: deque = deque()      # PendingSubmission, taken in one after the other
        self._asking: Optional[tuple] = None   # (socket, envelope, key, rid) of the client request being answered
        self.longest_intake_slice_ms = 0.0    # since start or the last reset_peaks, admissions aside
        self._admitted_large = False           # this turn admitted (or refused at last) a submission taken in

    def _submit(self, dag: Optional[str], raw_jobs: list, scripts: dict, now: float,
                agent_run_id: Optional[str] = None):
        self._check_submission(dag, raw_jobs, agent_run_id)
        if len(raw_jobs) <= defaults.INTAKE_AT_ONCE_JOBS or self._asking is None:
            specs = self._finish_specs(self._specs_from_wire(raw_jobs, scripts, 0, len(raw_jobs)))
            return self._admit_submission(dag, specs, None, now, agent_run_id)
        socket, envelope, key, rid = self._asking
        if not any(pending.key == key for pending in self._intake):   # a retry of one being taken in waits for it
            self._intake.append(PendingSubmission(key, rid, (socket, envelope), dag, raw_jobs, scripts, agent_run_id))
        return DEFERRED

    def _intake_waiting(self) -> bool:
        return bool(self._intake)

    def _intake_stats(self) -> dict:
        """Large submissions being taken in now, and their jobs: answered once admitted or refused."""
        return {"submissions": len(self._intake), "jobs": sum(len(p.raw_jobs) for p in self._intake)}

    def _take_in(self) -> None:
        """Work on the submissions waiting to be taken in for at most INTAKE_SLICE_S (the last step of
        one, its admission, is done whole once begun)."""
        if not self._intake:
            return
        began = time.perf_counter()
        deadline = began + defaults.INTAKE_SLICE_S
        while self._intake and time.perf_counter() < deadline:
            pending = self._intake[0]
            try:
                reply = self._intake_step(pending, deadline)
            except (ProtocolError, TitanError) as exc:
                log.info("refused a request: %s", exc)
                reply = protocol.encode(protocol.error_reply(pending.rid, exc.kind, str(exc),
                                                             getattr(exc, "details", None)))
            except Exception as exc:   # the master never dies from a message
                log.exception("internal error taking in a submission")
                reply = protocol.encode(protocol.error_reply(pending.rid, "InternalError", f"master error: {exc!r}"))
            if reply is not None:
                self._intake.popleft()
                self._reply(*pending.reply_to, reply)
        if not self._admitted_large:   # the admission's turn is counted on its own (turn_peaks)
            self.longest_intake_slice_ms = max(self.longest_intake_slice_ms, (time.perf_counter() - began) * 1000)

    def _intake_step(self, pending: PendingSubmission, deadline: float) -> Optional[bytes]:
        """One slice of work on `pending`: the encoded reply once it is admitted (or refused), else None."""
        raw = pending.raw_jobs
        while len(pending.specs) < len(raw):
            if time.perf_counter() >= deadline:
                return None
            start = len(pending.specs)
            pending.specs.extend(self._specs_from_wire(raw, pending.scripts, start, start + PARSE_CHUNK))
        if pending.steps is None:
            pending.specs = self._finish_specs(pending.specs)
            pending.steps = self.scheduler.validation(pending.dag, self.scheduler.with_gates(pending.specs))
        while pending.ordered is None:
            if time.perf_counter() >= deadline:
                return None
            try:
                next(pending.steps)
            except StopIteration as done:
                pending.ordered = done.value
        return self._admit_taken_in(pending)

    def _admit_taken_in(self, pending: PendingSubmission) -> bytes:
        self._admitted_large = True
        if self.committer.failure is not None:
            raise JournalUnavailable(f"the master cannot write its journal ({self.committer.failure}); it "
                                     "refuses changes until it can, and did not do this one. Retry later.")
        result = self._admit_submission(pending.dag, pending.specs, pending.ordered, time.monotonic(),
                                        pending.agent_run_id)
        reply = protocol.encode(protocol.result_reply(protocol.CLIENT_OPS, "submit", pending.rid, result))
        self._remember_reply("client", pending.key, reply, result)
        return reply
