"""What the master does for each client and TitanStore request. Mixed into Master (titan/master.py)."""

from __future__ import annotations

import time
from typing import Optional

from titan.net import protocol
from titan.net.protocol import ProtocolError


class RequestHandlers:
    """Needs: self.scheduler, self.store, self.logs, self.journal, self._apply, run and event facts."""

    def _client_request(self, op: str, message: dict):
        now = time.monotonic()
        if op == "ping":
            return {"run_id": self.run_id, "seq": self.event_seq}
        if op == "submit":
            return self._submit(message.get("dag"), message["jobs"], now)
        if op == "status":
            return self.scheduler.describe_job(self._job_id(message["job_id"]))
        if op == "states":
            return self._states(message["job_ids"])
        if op == "dag_status":
            return self.scheduler.describe_dag(message["dag"])
        if op == "logs":
            return self.logs.text(self.scheduler.job(self._job_id(message["job_id"])).job_id)
        if op == "cancel":
            job_id = self._job_id(message["job_id"])
            self._apply(self.scheduler.cancel(job_id, now))
            return self.scheduler.describe_job(job_id)
        if op == "cancel_dag":
            self._apply(self.scheduler.cancel_dag(message["dag"], now))
            return self.scheduler.describe_dag(message["dag"])
        if op == "approve":
            self._apply(self.scheduler.approve(message["gate_id"], now))
            return self.scheduler.describe_job(message["gate_id"])
        if op == "reject":
            self._apply(self.scheduler.reject(message["gate_id"], message.get("reason") or "", now))
            return self.scheduler.describe_job(message["gate_id"])
        if op == "stats":
            return {**self.scheduler.stats(), "run_id": self.run_id, "seq": self.event_seq,
                    "uptime_s": round(time.time() - self.started_at, 3), "store_keys": len(self.store),
                    "journal": self.journal.path if self.journal else None}
        raise ProtocolError(f"unhandled op {op!r}")

    def _submit(self, dag: Optional[str], raw_jobs: list, now: float) -> dict:
        self.limits.check_job_count(len(raw_jobs))
        specs = [protocol.job_from_wire(raw, i, self._shared_script) for i, raw in enumerate(raw_jobs)]
        for spec in specs:
            self.limits.check_script(spec.job_id, len(spec.script))
        effects = self.scheduler.submit(dag, specs, now)
        for spec in specs:
            self.logs.reset(spec.job_id)
            if self.journal is not None:
                self.journal.record_submission(self.scheduler.jobs[spec.job_id])
        if dag and self.journal is not None:
            self.journal.record_dag(dag, self.scheduler.dags[dag])
        self._apply(effects)
        return {"dag": dag, "jobs": [spec.job_id for spec in specs]}

    def _shared_script(self, script: bytes) -> bytes:
        return self._scripts.setdefault(script, script)

    def _states(self, job_ids: list) -> dict:
        """The jobs' states, and the sequence number of the last event they reflect: a subscriber drops
        events up to it (they are in this snapshot already)."""
        jobs = self.scheduler.jobs
        runs = {job_id: jobs.get(self._job_id(job_id)) for job_id in job_ids if isinstance(job_id, str)}
        states = {job_id: run.state.value if run is not None else None for job_id, run in runs.items()}
        return {"states": states, "seq": self.event_seq, "run_id": self.run_id}

    def _job_id(self, requested: str) -> str:
        """The original SDK sometimes spelled ids 'DAG-<id>'; accept that unless a job has that very id."""
        if requested.startswith("DAG-") and requested not in self.scheduler.jobs:
            return requested[4:]
        return requested

    def _store_request(self, op: str, message: dict):
        key = message.get("key")
        if op == "put":
            result = self.store.put(key, message["value"])
        elif op == "get":
            return self.store.get(key)
        elif op == "delete":
            result = self.store.delete(key)
        elif op == "incr":
            by = message.get("by")
            result = self.store.incr(key, 1 if by is None else by)
        elif op == "sadd":
            result = self.store.sadd(key, message["member"])
        elif op == "smembers":
            return self.store.smembers(key)
        elif op == "keys":
            return self.store.keys(message.get("prefix") or "")
        else:
            raise ProtocolError(f"unhandled store op {op!r}")
        if self.journal is not None:
            self.journal.record_store(key, self.store.raw(key))
        return result
