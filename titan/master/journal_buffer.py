"""What both journals (sqlite_journal.py, postgres_journal.py) keep of one turn until commit() writes it.

`BufferedJournal` holds the `record_*` calls, which buffer alike whatever the backend; each backend gives
the shape of its spec rows (`_spec_row`) and writes and loads what is buffered here. A backend
sets, before its first record: `_stored_scripts` (sha256 of the scripts it holds), `_log_rows`
(journal_logs.LogRows), `_reply_ids` (channel -> {request id: row id} of its kept replies, oldest first:
`_keep_reply` fills it) and `_next_reply_id`.
Values are kept as the master gave them (text as str): a backend encodes them as it writes.
"""

from __future__ import annotations

import itertools
from typing import Dict, List, Optional

import msgpack

from titan import defaults
from titan.core.jobs import JobRun, spec_to_dict
from titan.master import history_journal as history
from titan.master.journal import Journal, StoreValue

REPLIES_KEPT = defaults.REPLY_CACHE_SIZE   # per channel, as many as the master's in-memory reply cache


class BufferedJournal(Journal):
    def _clear_pending(self) -> None:
        self._specs: List[tuple] = []
        self._scripts: List[tuple] = []
        self._replaced: List[tuple] = []   # (job id, seq of the run replaced, seq of its new run)
        self._admitted: set = set()        # job ids whose new run's spec is pending
        self._states: Dict[str, JobRun] = {}   # runs whose state changed; written as they are at commit
        self._dags: Dict[str, bytes] = {}
        self._agent_runs: Dict[str, Optional[str]] = {}
        self._logs: List[tuple] = []       # (row id, job id, seq, attempt, stream, text)
        self._store: Dict[str, StoreValue] = {}
        self._set_adds: Dict[str, set] = {}   # key -> members added since the last commit
        self._replies: List[tuple] = []    # (id, channel, rid, reply)
        self._deployed: Dict[str, tuple] = {}   # name -> (script, deployed_at)
        self._past_runs: Dict[int, JobRun] = {}
        self._dag_runs: Dict[str, object] = {}   # run id -> titan.core.history.DagRun
        self._forgotten = history.ForgottenRows()

    def record_submission(self, run: JobRun, replaced_seq: Optional[int], script_sha256: str) -> None:
        """A new run of a job; the run it replaces (`replaced_seq`) loses its spec and logs. Its script
        is written once for all the jobs that share it (`script_sha256`, as the master computed it);
        specs name it by hash (10,000 jobs of one script are common)."""
        spec = history.with_spec_extras(spec_to_dict(run.spec), run)
        script = spec.pop("script")
        spec["script_sha256"] = script_sha256
        if script_sha256 not in self._stored_scripts:
            self._stored_scripts.add(script_sha256)
            self._scripts.append((script_sha256, script))
        self._specs.append(self._spec_row(run, msgpack.packb(spec, use_bin_type=True)))
        self._admitted.add(run.job_id)
        if replaced_seq is not None:
            self._replaced.append((run.job_id, replaced_seq, run.seq))
            self._log_rows.forget(run.job_id)
        self.record_state(run)

    def _spec_row(self, run: JobRun, spec: bytes) -> tuple:
        """The run's spec row, as this backend's job_specs table holds it."""
        raise NotImplementedError

    def record_state(self, run: JobRun) -> None:
        """The run's state changed; what is written is its state at commit (a turn may change it often)."""
        self._states[run.job_id] = run

    def record_states(self, runs: Dict[str, JobRun]) -> None:
        """record_state for each run of a {job id: run} map."""
        self._states.update(runs)

    def record_dag(self, name: str, job_ids: List[str]) -> None:
        self._dags[name] = msgpack.packb(list(job_ids), use_bin_type=True)

    def record_agent_run(self, dag: str, run_id: Optional[str]) -> None:
        """The agent run the DAG was last submitted under; None when it was submitted under none."""
        self._agent_runs.pop(dag, None)
        self._agent_runs[dag] = run_id

    def record_past_run(self, run: JobRun) -> None:
        self._past_runs[run.seq] = run

    def record_dag_run(self, dag_run) -> None:
        self._dag_runs[dag_run.run_id] = dag_run

    def record_forgotten(self, runs: List[JobRun], dag_runs: List[str], dags: List[str], scripts: List[str]) -> None:
        self._forgotten.add(runs, dag_runs, dags, scripts)
        self._stored_scripts.difference_update(scripts)
        for dag_run in dag_runs:
            self._dag_runs.pop(dag_run, None)

    def record_log(self, job_id: str, seq: int, attempt: int, stream: str, text: str) -> None:
        self._logs.append((self._log_rows.new_row(job_id, seq, text), job_id, seq, attempt, stream, text))

    def record_store(self, key: str, value: StoreValue) -> None:
        """The key's value now; None when it was deleted."""
        self._store[key] = set(value) if isinstance(value, set) else value
        self._set_adds.pop(key, None)

    def record_set_add(self, key: str, member: str) -> None:
        """A member added to the set at `key` (created by it if absent)."""
        if key in self._store:   # written whole in this commit (or deleted first): one more member in it
            whole = self._store[key]
            self._store[key] = whole if isinstance(whole, set) else set()
            self._store[key].add(member)
        else:
            self._set_adds.setdefault(key, set()).add(member)

    def record_deployed_script(self, name: str, script: bytes, deployed_at: float) -> None:
        self._deployed[name] = (script, float(deployed_at))   # as a REAL column gives it back, for its crc

    def record_reply(self, channel: str, rid: str, reply: bytes) -> None:
        self._replies.append((self._next_reply_id, channel, rid, reply))
        self._keep_reply(channel, rid, self._next_reply_id)
        self._next_reply_id += 1

    def _keep_reply(self, channel: str, rid: str, row_id: int) -> None:
        """A reply row kept (written now, or found at open); an older row of the same request id (its
        reply left the master's cache as the oldest, and the request came again) is deleted."""
        ids = self._reply_ids[channel]
        older = ids.pop(rid, None)
        if older is not None:
            self._forgotten.replies.append(older)
        ids[rid] = row_id

    def record_replies_forgotten(self, channel: str, rids: List[str]) -> None:
        ids = self._reply_ids[channel]
        for rid in rids:
            row_id = ids.pop(rid, None)
            if row_id is not None:
                self._forgotten.replies.append(row_id)

    def _replies_to_prune(self) -> Dict[str, List[int]]:
        """Now and then (each REPLIES_KEPT // 10 replies written), the row ids of each channel's oldest
        replies past REPLIES_KEPT, to delete in this commit; _replies_pruned once it is written."""
        due = self._prune_due()
        self._replies_since_prune += len(self._replies)
        if not due:
            return {}
        self._replies_since_prune = 0
        return {channel: list(itertools.islice(ids.values(), len(ids) - REPLIES_KEPT))
                for channel, ids in self._reply_ids.items() if len(ids) > REPLIES_KEPT}

    def _prune_due(self) -> bool:
        """Will this commit prune replies? Now and then (each REPLIES_KEPT // 10 replies), not every turn."""
        return self._replies_since_prune + len(self._replies) >= REPLIES_KEPT // 10

    def _replies_pruned(self, pruned: Dict[str, List[int]]) -> None:
        for channel, row_ids in pruned.items():
            ids = self._reply_ids[channel]
            for _ in row_ids:
                ids.popitem(last=False)

    @property
    def backlog(self) -> int:
        """State changes committed but not yet folded (what a restart would fold)."""
        return self._unfolded

    @property
    def has_pending(self) -> bool:
        return bool(self._specs or self._states or self._dags or self._logs or self._store or self._set_adds
                    or self._replies or self._agent_runs or self._deployed or self._past_runs or self._dag_runs
                    or bool(self._forgotten))
