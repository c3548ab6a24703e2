"""What the dashboard knows of the cluster, rebuilt from snapshots and kept current by events.

A plain object: no sockets, no threads, no clock. The feed (feed.py) decides when to take a snapshot;
this decides whether an event is the next one, already known, or a sign that some were missed.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Dict, Iterable, Optional

from titan import defaults

NEXT, ALREADY_SEEN, RESYNC = "next", "already-seen", "resync"

# The parts of a job the page shows; dag_status gives them all, a job event gives the changing ones.
JOB_FIELDS = ("job_id", "dag", "state", "attempt", "worker", "reason", "exit_code", "requirement", "parents")
EVENT_JOB_FIELDS = ("state", "attempt", "worker", "reason", "exit_code")


class ClusterView:
    def __init__(self, kept_dags: int = defaults.DASHBOARD_KEPT_DAGS,
                 kept_single_jobs: int = defaults.DASHBOARD_KEPT_SINGLE_JOBS):
        self.kept_dags, self.kept_single_jobs = kept_dags, kept_single_jobs
        self.run_id: Optional[str] = None
        self.seq = 0
        self.stats: dict = {}
        self.master_up = False
        self.master_error = ""
        self.dags: "OrderedDict[str, dict]" = OrderedDict()          # oldest first
        self.single_jobs: "OrderedDict[str, dict]" = OrderedDict()   # jobs submitted without a DAG

    # ----------------------------------------------------------------- snapshots

    def reset(self, stats: dict, dags: Iterable[dict]) -> None:
        """A fresh snapshot: stats (with run_id and seq) and the current description of each known DAG."""
        if stats["run_id"] != self.run_id:
            self.single_jobs.clear()      # another run of the master: the old ones may be gone
        self.run_id, self.seq = stats["run_id"], stats["seq"]
        self.set_stats(stats)
        self.dags.clear()
        for description in dags:
            self.set_dag(description)

    def set_stats(self, stats: dict) -> None:
        self.stats = {key: stats.get(key) for key in ("workers", "jobs_by_state", "queued_by_requirement",
                                                      "uptime_s", "run_id")}
        self.master_up, self.master_error = True, ""

    def set_master_down(self, error: str) -> None:
        self.master_up, self.master_error = False, error

    def set_dag(self, description: dict) -> dict:
        dag = {"dag": description["dag"], "finished": bool(description.get("finished")),
               "jobs": OrderedDict((job["job_id"], _job_fields(job)) for job in description["jobs"])}
        self.dags.pop(dag["dag"], None)
        self.dags[dag["dag"]] = dag
        self._forget_old_dags()
        return dag

    def _forget_old_dags(self) -> None:
        finished = [name for name, dag in self.dags.items() if dag["finished"]]
        for name in finished[:max(0, len(self.dags) - self.kept_dags)]:
            del self.dags[name]

    # ----------------------------------------------------------------- events

    def place(self, event: dict) -> str:
        """NEXT if the event follows the last one applied, ALREADY_SEEN if the snapshot holds it, RESYNC if
        events were missed or the master restarted."""
        if event.get("run_id") != self.run_id:
            return RESYNC
        seq = event.get("seq", 0)
        if seq <= self.seq:
            return ALREADY_SEEN
        return NEXT if seq == self.seq + 1 else RESYNC

    def needs_dag(self, event: dict) -> Optional[str]:
        """The DAG whose shape must be fetched before this event can be shown, if any."""
        name = event.get("dag")
        if not name or event.get("topic") == "dag.finished":
            return None
        if event.get("topic") == "dag.submitted" or name not in self.dags:
            return name
        job_id = event.get("job_id")
        return name if job_id and job_id not in self.dags[name]["jobs"] else None

    def apply(self, event: dict) -> None:
        self.seq = event.get("seq", self.seq)
        topic = event.get("topic", "")
        if topic.startswith("job."):
            self._apply_job_event(event)
        elif topic == "dag.finished" and event.get("dag") in self.dags:
            self.dags[event["dag"]]["finished"] = True

    def _apply_job_event(self, event: dict) -> None:
        dag = self.dags.get(event.get("dag") or "")
        job_id = event["job_id"]
        if dag is not None and job_id in dag["jobs"]:
            dag["jobs"][job_id].update({key: event.get(key) for key in EVENT_JOB_FIELDS})
            return
        if event.get("dag"):
            return                       # its DAG could not be described (e.g. gone); nothing to draw it in
        job = self.single_jobs.pop(job_id, None) or {"job_id": job_id, "dag": None, "parents": [],
                                                        "requirement": None}
        job.update({key: event.get(key) for key in EVENT_JOB_FIELDS})
        self.single_jobs[job_id] = job
        while len(self.single_jobs) > self.kept_single_jobs:
            self.single_jobs.popitem(last=False)

    # ----------------------------------------------------------------- what a browser gets

    def snapshot(self) -> dict:
        return {"type": "snapshot", "run_id": self.run_id, "seq": self.seq, "stats": self.stats,
                "master": self.master_message(), "dags": [dag_message(dag) for dag in self.dags.values()],
                "single_jobs": list(self.single_jobs.values())}

    def master_message(self) -> dict:
        return {"type": "master", "up": self.master_up, "error": self.master_error, "run_id": self.run_id}

    def dag_names(self) -> list:
        return list(self.dags)

    def job(self, job_id: str) -> Optional[dict]:
        for dag in reversed(self.dags.values()):
            if job_id in dag["jobs"]:
                return dag["jobs"][job_id]
        return self.single_jobs.get(job_id)


def dag_message(dag: dict) -> dict:
    return {"type": "dag", "dag": dag["dag"], "finished": dag["finished"], "jobs": list(dag["jobs"].values())}


def _job_fields(job: Dict) -> dict:
    return {key: job.get(key) for key in JOB_FIELDS}
