"""The master's side of forgetting (titan/core/retention.py): a batch each loop turn, what a forgotten
run leaves behind (logs, journal rows, scripts nothing uses any more), `titan forget`, and what stats()
says of it; and the artifact blobs no name and no run kept refers to, swept after --artifact-grace
(ArtifactStore.sweep). Mixed into Master (titan/master/loop.py)."""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import time
from collections import Counter
from typing import Optional

from titan import defaults
from titan.core.effects import Forgotten
from titan.core.errors import JournalUnavailable, RequestRejected
from titan.core.jobs import JobRun
from titan.core.retention import Retention
from titan.master.collector import GcPauses
from titan.master.replies import named_jobs

log = logging.getLogger("titan.master")


class Cleaning:
    """Needs self.scheduler, self.journal, self.logs, self.replies, self.committer, self.config,
    self.dag_agent_run and the script maps of Master (_scripts, _script_digests, _scripts_sent, _script_digest)."""

    def _init_cleaning(self) -> None:
        self.scheduler.retention = Retention(self.config.keep_completed, self.config.keep_failed,
                                             self.config.keep_max_jobs)
        self._script_users: Counter = Counter()   # sha256 -> runs kept that use the script
        self._archive_users: Counter = Counter()  # sha256 -> runs kept that run from the archive (pins it)
        self._last_artifact_sweep = float("-inf")
        self.last_cleaning: Optional[dict] = None
        self._cleaned = False                  # this turn forgot something
        self.longest_turn_ms = 0.0             # since start, from after the poll to after the commit
        # The longest loop turns since start or the last reset_peaks: those that admitted a submission
        # taken in over several turns (titan/master/intake.py), those that forgot something, the others.
        # Wall time (from after the poll to after the commit) and CPU time, each kind's longest.
        self.turn_peaks = {f"{kind}{unit}": 0.0 for kind in ("admission", "cleaning", "other")
                           for unit in ("_ms", "_cpu_ms")}
        self._turn_cpu_began = time.thread_time()
        # The most CPU time one turn spent forgetting, in memory and in the journal: what cleaning costs
        # the master itself, whatever else runs on the machine.
        self.longest_cleaning_ms = 0.0
        self._cleaning_s = 0.0                 # this turn's, in memory
        self._journal_forget_s = 0.0           # the journal's forget_seconds when the turn began
        self._cleaning_capped = False          # this turn reached CLEANING_TURN_BUDGET_S with more to forget
        self._forgotten_since_trim = 0
        self.longest_trim_ms = 0.0
        # Runs one cleaning step may forget: adapted after each step so that forgetting them, in memory
        # and in the journal's commit, takes about CLEANING_BUDGET_S (the cost per run varies with the
        # machine's load, the journal and what a run leaves behind).
        self._forget_batch = defaults.FORGET_BATCH
        self._step: Optional[tuple] = None     # the last step: (runs forgotten, CPU s in memory, journal's s before)
        self.longest_cleaning_step_ms = 0.0    # the most CPU one step took, memory and journal
        self.gc_pauses = GcPauses()            # removed in close(): callbacks are per process
        self.gc_pauses.install()

    def _journal_dag_run(self, dag: str) -> None:
        """A DAG run began or ended (dag.submitted, dag.finished): its record as it is now."""
        latest = self.scheduler.history.latest_dag_run(dag)
        if latest is not None and self.journal is not None:
            self.journal.record_dag_run(latest)

    def _run_kept(self, run: JobRun) -> None:
        """A run the master keeps (submitted, or recovered): what it uses stays until it is forgotten."""
        if run.spec.script:
            self._script_users[self._script_digest(run.spec.script)] += 1
        if run.spec.archive:
            self._archive_users[run.spec.archive] += 1

    def _clean(self) -> None:
        """Forget one batch of what is due, unless the journal cannot be written (it would be forgotten
        in memory only, and come back at the next restart)."""
        if self.committer.failure is not None:
            return
        if not self.scheduler.forgetting_due(time.monotonic()):   # most turns: no thread_time calls (a system
            self._sweep_artifacts()                                # call that cost 5% of the master at S1-null)
            return
        self._settle_cleaning_step()
        left = defaults.CLEANING_TURN_BUDGET_S - self._turn_cleaning_s()
        if left < defaults.CLEANING_BUDGET_S / 4:
            self._cleaning_capped = True   # the rest waits for the next turn, which comes at once
            return
        budget = min(defaults.CLEANING_BUDGET_S, left)
        batch = max(defaults.FORGET_BATCH_MIN, int(self._forget_batch * budget / defaults.CLEANING_BUDGET_S))
        began, cpu_began = time.perf_counter(), time.thread_time()
        effects = self.scheduler.forget_old(time.monotonic(), batch, time.perf_counter, budget)
        self._apply(effects)
        forgotten = _count(effects)
        if forgotten:
            took, cpu = time.perf_counter() - began, time.thread_time() - cpu_began
            self._cleaned, self._cleaning_s = True, self._cleaning_s + cpu
            self._forgotten_since_trim += forgotten
            self._step = (forgotten, cpu, self._journal_forget_seconds())
            self.last_cleaning = {"at": time.time(), "forgotten": forgotten, "took_ms": round(took * 1000, 3)}
        self._sweep_artifacts()

    def _journal_forget_seconds(self) -> float:
        return getattr(self.journal, "forget_seconds", 0.0)

    def _cleaning_behind(self) -> bool:
        """The last turn stopped forgetting at its cap with more due: the next one should not wait in poll."""
        return self._cleaning_capped and self.scheduler.forgetting_due(time.monotonic())

    def _turn_cleaning_s(self) -> float:
        """CPU this loop turn has spent forgetting so far, in memory and in its commits."""
        return self._cleaning_s + self._journal_forget_seconds() - self._journal_forget_s

    def _settle_cleaning_step(self) -> None:
        """The last step's whole cost, now that its commit has deleted its rows: the longest step, and
        the next step's size (halfway to what the budget allows at this cost per run)."""
        if self._step is None:
            return
        forgotten, memory_s, journal_before = self._step
        self._step = None
        took = memory_s + self._journal_forget_seconds() - journal_before
        self.longest_cleaning_step_ms = max(self.longest_cleaning_step_ms, took * 1000)
        fits = defaults.CLEANING_BUDGET_S / max(took / forgotten, 1e-7)
        self._forget_batch = int(min(max((self._forget_batch + fits) / 2, defaults.FORGET_BATCH_MIN),
                                     defaults.FORGET_BATCH_MAX))

    def _sweep_artifacts(self) -> None:
        """Every ARTIFACT_SWEEP_EVERY_S, a small batch of the artifact store's blobs looked at, the
        garbage among them removed (a journal that cannot be written leaves them for a later sweep)."""
        now = time.monotonic()
        if self.config.artifact_grace is None or now - self._last_artifact_sweep < defaults.ARTIFACT_SWEEP_EVERY_S:
            return
        self._last_artifact_sweep = now
        try:
            self.artifacts.sweep(now, self.config.artifact_grace, self._archive_users.__contains__,
                                 defaults.ARTIFACT_SWEEP_LOOK, defaults.ARTIFACT_SWEEP_REMOVE)
        except (JournalUnavailable, OSError) as exc:
            log.warning("artifact sweep: %s; the blobs are kept until a later sweep", exc)

    def _timed_turn(self, began: float) -> None:
        """The turn's wall time (from after the poll, `began`) and CPU time, as turn_peaks count them."""
        self._settle_cleaning_step()
        if self._trim_due():
            self._forgotten_since_trim = 0
            self.longest_trim_ms = max(self.longest_trim_ms, _give_back_memory() * 1000)
        took, cpu_now = (time.perf_counter() - began) * 1000, time.thread_time()
        self.longest_turn_ms = max(self.longest_turn_ms, took)
        kind = "admission" if self._admitted_large else "cleaning" if self._cleaned else "other"
        self._admitted_large = False
        peaks = self.turn_peaks
        peaks[f"{kind}_ms"] = max(peaks[f"{kind}_ms"], took)
        peaks[f"{kind}_cpu_ms"] = max(peaks[f"{kind}_cpu_ms"], (cpu_now - self._turn_cpu_began) * 1000)
        self._turn_cpu_began = cpu_now   # the thread takes no CPU while it waits in poll
        if self._cleaned:
            self.longest_cleaning_ms = max(self.longest_cleaning_ms, self._turn_cleaning_s() * 1000)
        self._cleaned, self._cleaning_s = False, 0.0
        self._journal_forget_s = self._journal_forget_seconds()

    def _trim_due(self) -> bool:
        """TRIM_AFTER_FORGOTTEN runs forgotten since the last trim, or a fifth of that once forgetting
        has caught up (what a burst of jobs took is given back when it is over, not at the next one)."""
        forgotten = self._forgotten_since_trim
        if forgotten >= defaults.TRIM_AFTER_FORGOTTEN:
            return True
        return (forgotten >= defaults.TRIM_AFTER_FORGOTTEN // 5 and not self._cleaned
                and not self.scheduler.forgetting_due(time.monotonic()))

    def _runs_named(self, result) -> list:
        """The seqs of the kept runs a reply names (its jobs' current runs): it goes with the last of them."""
        jobs = self.scheduler.jobs
        return [jobs[job_id].seq for job_id in named_jobs(result) if job_id in jobs]

    def _let_go(self, effect: Forgotten) -> None:
        for job_id in effect.current:
            self.logs.reset(job_id)
        self._forget_replies(effect.runs)
        for dag in effect.dags:
            self.dag_agent_run.pop(dag, None)
        unused = [digest for digest in map(self._script_released, effect.runs) if digest is not None]
        for run in effect.runs:   # an archive no run pins any more ages out in the artifact sweep
            if run.spec.archive and self._archive_users[run.spec.archive] > 0:
                self._archive_users[run.spec.archive] -= 1
                if not self._archive_users[run.spec.archive]:
                    del self._archive_users[run.spec.archive]
        if self.journal is not None:
            self.journal.record_forgotten(effect.runs, effect.dag_runs, effect.dags, unused)

    def _forget_replies(self, runs: list) -> None:
        """Cached replies that named no other run kept leave memory and the journal with these runs."""
        seqs = [run.seq for run in runs]
        for channel, cache in self.replies.items():
            dropped = cache.forgot(seqs)
            if dropped and self.journal is not None:
                self.journal.record_replies_forgotten(channel, dropped)

    def _script_released(self, run: JobRun) -> Optional[str]:
        """The script's sha256 if no run kept uses it any more (it is then dropped), else None."""
        script = run.spec.script
        digest = self._script_digests.get(script) if script else None
        if digest is None:
            return None
        self._script_users[digest] -= 1
        if self._script_users[digest] > 0:
            return None
        del self._script_users[digest], self._script_digests[script]
        self._scripts.pop(script, None)
        for sent in self._scripts_sent.values():   # a worker may have dropped it too: send it again if needed
            sent.discard(digest)
        return digest

    def _forget_request(self, message: dict) -> dict:
        dag, before = message.get("dag"), message.get("before")
        if (dag is None) == (before is None):
            raise RequestRejected("forget takes a DAG name (dag) or a time (before, Unix seconds): one of them")
        if dag is not None:
            effects = self.scheduler.forget_dag(dag, time.monotonic())
            self._apply(effects)
            return {"forgotten": _count(effects), "to_forget": 0}
        return {"forgotten": 0, "to_forget": self.scheduler.forget_ended_before(before)}

    def _cleaning_stats(self, reset_peaks: bool) -> dict:
        peaks = {kind: round(ms, 3) for kind, ms in self.turn_peaks.items()}
        peaks["intake_slice_ms"] = round(self.longest_intake_slice_ms, 3)
        collections = self.gc_pauses.stats(reset_peaks)
        if reset_peaks:
            self.turn_peaks = dict.fromkeys(self.turn_peaks, 0.0)
            self.longest_intake_slice_ms = 0.0
        return {"turn_peaks": peaks, "jobs_kept": len(self.scheduler.history.runs), "jobs_forgotten": self.scheduler.forgotten_total,
                "journal_bytes": self.journal.size_bytes if self.journal is not None else 0,
                "last_cleaning": self.last_cleaning, "longest_turn_ms": round(self.longest_turn_ms, 3),
                "longest_cleaning_ms": round(self.longest_cleaning_ms, 3),
                "longest_cleaning_step_ms": round(self.longest_cleaning_step_ms, 3),
                "longest_trim_ms": round(self.longest_trim_ms, 3),
                "forget_batch": self._forget_batch, "cleaning_lag_s": self.scheduler.cleaning_lag(time.monotonic()),
                "gc": collections}


def _load_malloc_trim():
    """glibc's malloc_trim, or None where the C library is another (musl, macOS)."""
    try:
        trim = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim


_MALLOC_TRIM = _load_malloc_trim()


def _give_back_memory() -> float:
    """Hand the pages freed by forgetting back to the system (glibc keeps them for the process
    otherwise, so RSS stays at its peak); returns the seconds it took."""
    if _MALLOC_TRIM is None:
        return 0.0
    began = time.perf_counter()
    _MALLOC_TRIM(0)
    return time.perf_counter() - began


def _count(effects: list) -> int:
    return sum(len(effect.runs) for effect in effects if isinstance(effect, Forgotten))
