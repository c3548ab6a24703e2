"""What the master does for each client and TitanStore request. Mixed into Master (titan/master/loop.py)."""

from __future__ import annotations

import dataclasses
import time
from typing import Optional

from titan import defaults
from titan.core.errors import RequestRejected, UnknownAgentRun, UnknownArtifact
from titan.core import gates
from titan.core.jobs import JobSpec, JobState, gate_id
from titan.core.names import name_problem, shown_name
from titan.core.services import reported_state
from titan.net import jobwire, protocol
from titan.net.protocol import ProtocolError

ARTIFACT_OPS = frozenset({"has_blob", "upload_chunk", "upload_finish", "artifact_info", "read_blob"})


class RequestHandlers:
    """Needs: self.scheduler, self.store, self.logs, self.journal, self._apply, run and event facts,
    self.artifacts (titan.artifacts.ArtifactStore), self.dag_agent_run (DAG name -> agent run id) and
    self.deployed_scripts (titan.master.deployed_scripts.DeployedScripts)."""

    def _client_request(self, op: str, message: dict):
        now = time.monotonic()
        if op == "ping":
            return {"run_id": self.run_id, "seq": self.event_seq}
        if op == "submit":
            scripts = jobwire.submitted_scripts(message.get("scripts"))
            return self._submit(message.get("dag"), message["jobs"], scripts, now, message.get("agent_run_id"))
        if op == "status":
            return self.scheduler.describe_job(self._job_id(message["job_id"]), now)
        if op == "states":
            return self._states(message["job_ids"])
        if op == "dag_status":
            return self.scheduler.describe_dag(message["dag"], now)
        if op == "logs":
            return self._logs(self.scheduler.job(self._job_id(message["job_id"])), message.get("since"))
        if op == "cancel":
            job_id = self._job_id(message["job_id"])
            self._apply(self.scheduler.cancel(job_id, now))
            return self.scheduler.describe_job(job_id)
        if op == "cancel_dag":
            self._apply(self.scheduler.cancel_dag(message["dag"], now))
            return self.scheduler.describe_dag(message["dag"])
        if op == "retry":
            job_id = self._job_id(message["job_id"])
            self._apply(self.scheduler.retry(job_id, now))
            return self.scheduler.describe_job(job_id)
        if op == "retry_dag":
            self._apply(self.scheduler.retry_dag(message["dag"], now))
            return self.scheduler.describe_dag(message["dag"])
        if op == "approve":
            gate = self._job_id(message["gate_id"])
            self._apply(self.scheduler.approve(gate, now))
            return self.scheduler.describe_job(gate)
        if op == "reject":
            gate = self._job_id(message["gate_id"])
            self._apply(self.scheduler.reject(gate, message.get("reason") or "", now))
            return self.scheduler.describe_job(gate)
        if op == "agent_run":
            return self._agent_run(message["run_id"])
        if op in ARTIFACT_OPS:
            return self._artifact_request(op, message)
        if op in ("deploy_script", "deployed_scripts"):
            return self._deployed_scripts_request(op, message)
        if op == "stop_service":
            job_id = self._job_id(message["job_id"])
            self._apply(self.scheduler.stop_service(job_id, now))
            return self.scheduler.describe_job(job_id)
        if op == "dag_runs":
            return self.scheduler.dag_runs(message["dag"], message.get("limit") or defaults.DAG_RUNS_LISTED)
        if op == "list_jobs":
            return self.scheduler.list_jobs(
                message.get("state"), message.get("dag"), message.get("since"), message.get("until"),
                message.get("worker"), message.get("limit") or defaults.JOBS_LISTED, message.get("cursor"))
        if op == "forget":
            return self._forget_request(message)
        if op == "stats":
            return {**self.scheduler.stats(now), **self._cleaning_stats(bool(message.get("reset_peaks"))), "run_id": self.run_id,
                    "seq": self.event_seq, "totals": self.scheduler.totals_report(),
                    "artifacts": self.artifacts.stats(),
                    "uptime_s": round(time.time() - self.started_at, 3), "store_keys": len(self.store),
                    "journal": self.journal.path if self.journal else None,
                    "journal_backlog": self.journal.backlog if self.journal else 0, "leadership": self.leadership,
                    "intake": self._intake_stats()}
        raise ProtocolError(f"unhandled op {op!r}")

    def _check_submission(self, dag: Optional[str], raw_jobs: list, agent_run_id: Optional[str]) -> None:
        """What can be refused before any job of a submission is read."""
        self.limits.check_job_count(len(raw_jobs))
        if dag and name_problem(dag):   # "" and None: no DAG
            raise RequestRejected(f"DAG name {shown_name(dag)} {name_problem(dag)}")
        if agent_run_id is not None and not dag:
            raise RequestRejected("agent_run_id groups DAGs: submit the jobs as a DAG (submit_dag) to use it")
        if agent_run_id is not None and not 0 < len(agent_run_id) <= defaults.MAX_ARTIFACT_NAME_CHARS:
            raise RequestRejected(f"agent_run_id must be 1 to {defaults.MAX_ARTIFACT_NAME_CHARS} characters")

    def _specs_from_wire(self, raw_jobs: list, scripts: dict, start: int, stop: int) -> list:
        """The specs of raw_jobs[start:stop], each checked (ProtocolError names the first bad one)."""
        return [jobwire.job_from_wire(raw_jobs[i], i, self._shared_script, scripts)
                for i in range(start, min(stop, len(raw_jobs)))]

    def _finish_specs(self, specs: list) -> list:
        """Specs read from the wire as the scheduler takes them: script sizes checked, archives pinned,
        deployed scripts resolved, parents named 'DAG-<id>' renamed."""
        for spec in {id(spec.script): spec for spec in specs}.values():   # each shared script once
            self.limits.check_script(spec.job_id, len(spec.script))
        specs = [self._with_archive(spec) for spec in specs]
        if any(spec.deployed for spec in specs):
            specs = [self.deployed_scripts.resolve(spec) for spec in specs]
        return _parents_without_dag_prefix(specs, self.scheduler.jobs)

    def _admit_submission(self, dag: Optional[str], specs: list, ordered: Optional[list], now: float,
                          agent_run_id: Optional[str]) -> dict:
        """Admit the specs whole or not at all: `ordered`, if given, is them with their gates, validated
        and ordered already (titan/master/intake.py)."""
        if ordered is None:
            effects = self.scheduler.submit(dag, specs, now)
        else:
            effects = self.scheduler.submit_ordered(dag, ordered, now)
        self._clear_gate_keys(specs)
        if dag:
            self._record_agent_run(dag, agent_run_id)
        if dag and self.journal is not None:
            self.journal.record_dag(dag, self.scheduler.dags[dag])
        self._apply(effects)
        return {"dag": dag, "jobs": [spec.job_id for spec in specs]}

    def _deployed_scripts_request(self, op: str, message: dict):
        if op == "deployed_scripts":
            return self.deployed_scripts.list()
        self.limits.check_script(message["name"], len(message["script"]))
        entry = self.deployed_scripts.deploy(message["name"], message["script"], time.time())
        if self.journal is not None:
            self.journal.record_deployed_script(entry.name, entry.script, entry.deployed_at)
        return entry.describe()

    def _logs(self, run, since: Optional[int]):
        """All the text (the original reply), or, with `since`, only what came after that many characters,
        with the job's state: once it is final, the text returned is the last there will be."""
        if since is None:
            return self.logs.text(run.job_id)
        if since < 0:
            raise ProtocolError(f"'logs' message: 'since' must be >= 0 (characters already read), got {since}")
        text, offset = self.logs.text_since(run.job_id, since)
        return {"text": text, "offset": offset, "state": run.state.value}

    def _with_archive(self, spec: JobSpec) -> JobSpec:
        """An archive job names its archive ('project.zip/src/step.py'); pin the content it names now, so
        a later upload under the same name does not change what this job runs."""
        if not spec.is_archive:
            return spec
        if spec.archive is not None:
            if not self.artifacts.has(spec.archive):
                raise UnknownArtifact(f"job {spec.job_id!r}: the master holds no archive with sha256 "
                                      f"{spec.archive[:16]}...; upload it first", sha256=spec.archive)
            return spec
        name, _ = jobwire.split_archive_filename(spec.filename)
        try:
            entry = self.artifacts.info(name)
        except UnknownArtifact:
            raise UnknownArtifact(f"job {spec.job_id!r} runs from project archive {name!r}, which was never "
                                  "uploaded (client.upload_project_folder(folder, project_name=...))", name=name) from None
        return dataclasses.replace(spec, archive=entry["sha256"])

    def _record_agent_run(self, dag: str, agent_run_id: Optional[str]) -> None:
        """A DAG belongs to the agent run it was last submitted under, or to none."""
        self.dag_agent_run.pop(dag, None)   # re-inserted last: a run lists its DAGs in submission order
        if agent_run_id is not None:
            self.dag_agent_run[dag] = agent_run_id
        if self.journal is not None:
            self.journal.record_agent_run(dag, agent_run_id)

    def _agent_run(self, run_id: str) -> dict:
        dags = [dag for dag, run in self.dag_agent_run.items() if run == run_id]
        if not dags:
            raise UnknownAgentRun(f"no DAG was submitted under agent run {run_id!r}", run_id=run_id)
        described = [self.scheduler.describe_dag(dag) for dag in dags if dag in self.scheduler.dags]
        return {"run_id": run_id, "dags": described, "finished": all(d["finished"] for d in described)}

    def _artifact_request(self, op: str, message: dict):
        artifacts = self.artifacts
        if op == "has_blob":
            return artifacts.has(message["sha256"])
        if op == "upload_chunk":
            return artifacts.receive_chunk(message["upload_id"], message["offset"], message["data"])
        if op == "upload_finish":
            return artifacts.finish(message.get("upload_id"), message["sha256"], message["name"], message["kind"])
        if op == "artifact_info":
            return artifacts.info(message["name"])
        data, size = artifacts.read(message["sha256"], message["offset"])
        return {"data": data, "size": size}

    def _serve_archive(self, worker_id: str, message: dict) -> None:
        """One chunk of a project archive to a worker that asked (it asks for the next when this arrives)."""
        sha256, offset = message["sha256"], message["offset"]
        data, size, error = b"", 0, None
        try:
            data, size = self.artifacts.read(sha256, offset)
        except UnknownArtifact as exc:
            error = str(exc)
        if offset == 0 and error is None:
            self.artifacts.archive_fetches += 1
        self.artifacts.bytes_sent_to_workers += len(data)
        self._send_worker(worker_id, protocol.message(protocol.MASTER_TO_WORKER_OPS, "archive_chunk", sha256=sha256,
                                                      offset=offset, size=size, data=data, error=error))

    def _shared_script(self, script: bytes) -> bytes:
        return self._scripts.setdefault(script, script)

    def _states(self, job_ids: list) -> dict:
        """The jobs' states as wait() counts them (a service that is up: COMPLETED), and the sequence number
        of the last event they reflect: a subscriber drops events up to it (they are in this snapshot already)."""
        jobs, states = self.scheduler.jobs, {}
        for job_id in job_ids:   # one pass: wait() asks this of 10,000 jobs at once, and again each second
            if not isinstance(job_id, str):
                continue
            run = jobs.get(job_id)
            if run is None and job_id.startswith("DAG-"):   # as _job_id spells it
                run = jobs.get(job_id[4:])
            if run is None:
                states[job_id] = self._forgotten_state(job_id)
            else:
                states[job_id] = reported_state(run.state.value, True) if run.service_up else run.state._value_
        return {"states": states, "seq": self.event_seq, "run_id": self.run_id}

    def _forgotten_state(self, job_id: str) -> Optional[str]:
        """How a job the master forgot had ended, while it remembers that (so wait() returns it); else None."""
        gone = self.scheduler.forgotten_job(self._job_id(job_id))
        return None if gone is None else gone["state"]

    def _job_id(self, requested: str) -> str:
        """The original SDK sometimes spelled ids 'DAG-<id>'; accept that unless a job has that very id."""
        if requested.startswith("DAG-") and requested not in self.scheduler.jobs:
            return requested[4:]
        return requested

    def _store_request(self, op: str, message: dict):
        key = message.get("key")
        if op == "put":
            result = self.store.put(key, message["value"])
            self._journal_store(key)
            self._gate_decision_from_store(key, message["value"])
            return result
        elif op == "get":
            return self.store.get(key)
        elif op == "delete":
            result = self.store.delete(key)
        elif op == "incr":
            by = message.get("by")
            result = self.store.incr(key, 1 if by is None else by)
        elif op == "sadd":
            result = self.store.sadd(key, message["member"])
            if result and self.journal is not None:
                self.journal.record_set_add(key, message["member"])
            return result
        elif op == "smembers":
            return self.store.smembers(key)
        elif op == "keys":
            return self.store.keys(message.get("prefix") or "")
        else:
            raise ProtocolError(f"unhandled store op {op!r}")
        self._journal_store(key)
        return result

    def _journal_store(self, key: str) -> None:
        if self.journal is not None:
            self.journal.record_store(key, self.store.raw(key))

    def _gate_decision_from_store(self, key: str, value: str) -> None:
        """APPROVED / REJECTED under titan:hitl:status:<gate> decides a waiting gate as approve/reject do
        (journaled, with events). A gate not waiting yet reads the key when it opens; other keys, values
        and gates are plain store data."""
        gate, decision = gates.gate_of_status_key(key), gates.decision_of(value)
        if gate is None or decision is None:
            return
        run = self.scheduler.jobs.get(self._job_id(gate))
        if run is None or not gates.is_gate(run.spec) or run.state != JobState.WAITING_APPROVAL:
            return
        now = time.monotonic()
        if decision == gates.APPROVED:
            self._apply(self.scheduler.approve(run.job_id, now, f"approved through TitanStore key {key!r}"))
        else:
            self._apply(self.scheduler.reject(run.job_id, f"through TitanStore key {key!r}", now))

    def _decision_made_early(self, gate: str) -> Optional[str]:
        """What the gate's TitanStore key says when the gate opens (scheduler.decision_made_early)."""
        value = self.store.raw(gates.status_key(gate))
        return value if isinstance(value, str) else None

    def _clear_gate_keys(self, specs: list) -> None:
        """A new run of a gate (one per job with a hitl_message) starts undecided: a decision left in its
        key from an earlier run is reset to CLEARED, as the original SDK did at submit."""
        for spec in specs:
            if spec.hitl_message:
                key = gates.status_key(gate_id(spec.job_id))
                if self.store.raw(key) is not None:
                    self.store.put(key, gates.CLEARED)
                    self._journal_store(key)


def _parents_without_dag_prefix(specs: list, known_jobs: dict) -> list:
    """A parent spelt 'DAG-<id>' (the original's name for a submitted job) is the job <id>, unless a job,
    known or in this submission, has that very name."""
    if not any(parent.startswith("DAG-") for spec in specs for parent in spec.parents):
        return specs
    own = {spec.job_id for spec in specs}

    def parent(name: str) -> str:
        if name.startswith("DAG-") and name not in own and name not in known_jobs:
            return name[4:]
        return name

    return [dataclasses.replace(spec, parents=tuple(parent(p) for p in spec.parents))
            if any(p.startswith("DAG-") for p in spec.parents) else spec for spec in specs]
