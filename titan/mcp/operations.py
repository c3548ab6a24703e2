"""What each MCP tool does, as plain functions over a TitanClient that return plain dicts: no MCP SDK
here, so this reads (and could be driven) without it. Errors are the SDK's: TitanError carrying the
master's message, ValueError for bad input; the server turns both into tool errors."""

from __future__ import annotations

import time
from collections import Counter
from typing import Iterable, List, Union

from titan import defaults
from titan.core.errors import MasterUnreachable
from titan.mcp import submissions
from titan_sdk import TitanClient, load_pipeline
from titan_sdk.client import FINAL_STATE_NAMES


def ping_master(client: TitanClient) -> dict:
    started = time.monotonic()
    reply = client.ping()
    return {"ok": True, "master": f"{client.host}:{client.port}", "run_id": reply.get("run_id"),
            "round_trip_ms": round((time.monotonic() - started) * 1000, 3)}


def submit_single_job(client: TitanClient, job_id: str, script_content: str, args: str, requirement: str,
                      priority: int) -> dict:
    job = submissions.inline_job(job_id, script_content, args, requirement, priority)
    warnings = submissions.requirement_warnings(client, [job])
    client.submit_job(job)
    return {"job_id": job.job_id, "state": client.get_job_status(job.job_id), "warnings": warnings}


def submit_dag_pipeline(client: TitanClient, dag_name: str, jobs_json: Union[str, list], agent_run_id: str) -> dict:
    if not isinstance(dag_name, str) or not dag_name.strip():
        raise ValueError(f"dag_name must be a non-empty string, got {dag_name!r}")
    jobs = submissions.jobs_from_json(jobs_json)
    warnings = submissions.requirement_warnings(client, jobs)
    job_ids = client.submit_dag(dag_name, jobs, agent_run_id=agent_run_id or None)
    return {"dag": dag_name, "job_ids": job_ids, "gates": submissions.gates_of(jobs), "warnings": warnings}


def submit_yaml_pipeline(client: TitanClient, yaml_path: str, agent_run_id: str) -> dict:
    """`yaml_path` is read where this server runs (as `titan run` reads it)."""
    pipeline = load_pipeline(yaml_path)
    warnings = submissions.requirement_warnings(client, pipeline.jobs)
    job_ids = client.submit_pipeline(pipeline, agent_run_id=agent_run_id or None)
    return {"dag": pipeline.name, "job_ids": job_ids, "gates": submissions.gates_of(pipeline.jobs),
            "warnings": warnings}


def job_logs(client: TitanClient, job_id: str) -> dict:
    reply = client.read_logs(job_id, 0)
    return {"job_id": job_id, "state": reply["state"], "logs": reply["text"]}


def tail_job_logs(client: TitanClient, job_id: str, since: int) -> dict:
    if since < 0:
        raise ValueError(f"since must be 0 or the offset a previous call returned, got {since}")
    reply = client.read_logs(job_id, since)
    return {"job_id": job_id, "text": reply["text"], "offset": reply["offset"], "state": reply["state"],
            "finished": reply["state"] in FINAL_STATE_NAMES}


def gate_decision(gate_id: str, state: str) -> dict:
    return {"gate_id": gate_id, "state": state}


def store_get(client: TitanClient, key: str) -> dict:
    value = client.store_get(key)
    return {"key": key, "value": value, "found": value is not None}


def store_put(client: TitanClient, key: str, value: str) -> dict:
    client.store_put(key, value)
    return {"key": key, "stored": True}


def wait_for_jobs(client: TitanClient, job_ids: Iterable[str], timeout_s: float) -> dict:
    """Returns as soon as every job has ended, or after `timeout_s` with those still going: the SDK's
    wait() follows the master's event stream (with a snapshot to heal lost events), it does not poll."""
    waiting = _job_id_list(job_ids)
    if not 0 < timeout_s <= defaults.MCP_MAX_WAIT_S:
        raise ValueError(f"timeout_s must be more than 0 and at most {defaults.MCP_MAX_WAIT_S:g}, got {timeout_s:g}")
    ended: dict = {}
    timed_out = False
    try:
        client.wait(waiting, timeout=timeout_s, on_final=lambda job_id, state: ended.__setitem__(job_id, state))
    except MasterUnreachable:
        raise
    except TimeoutError:
        timed_out = True
    pending = {job_id: client.get_job_status(job_id) for job_id in waiting if job_id not in ended}
    return {"finished": ended, "pending": pending, "timed_out": timed_out,
            "all_completed": not pending and all(state == "COMPLETED" for state in ended.values())}


def _job_id_list(job_ids) -> List[str]:
    if isinstance(job_ids, str):
        job_ids = [job_ids]
    ids = list(dict.fromkeys(job_ids))
    if not ids or not all(isinstance(job_id, str) and job_id for job_id in ids):
        raise ValueError(f"job_ids must be a non-empty list of job id strings, got {job_ids!r}")
    return ids


def dag_status(client: TitanClient, dag_name: str) -> dict:
    status = client.dag_status(dag_name)
    return {**status, "counts": dict(Counter(job["state"] for job in status["jobs"]))}


def list_jobs(client: TitanClient, state: str, dag: str, limit: int, cursor: str) -> dict:
    """The master's list_jobs: every job run it keeps, newest first, a page at a time."""
    return client.list_jobs(state=state.strip().upper() or None, dag=dag or None, limit=limit, cursor=cursor or None)


def cluster_status(client: TitanClient) -> dict:
    stats = client.stats()
    workers = [_worker(worker) for worker in stats["workers"]]
    capabilities = {defaults.DEFAULT_REQUIREMENT} | {cap for worker in workers for cap in worker["capabilities"]}
    return {"master": f"{client.host}:{client.port}", "workers": workers, "capabilities": sorted(capabilities),
            "slots": sum(w["slots"] for w in workers), "busy_slots": sum(len(w["running"]) for w in workers),
            "jobs_by_state": stats["jobs_by_state"], "queued_by_requirement": stats["queued_by_requirement"],
            "queue_depths": stats["queue_depths"], "recent_dags": stats["recent_dags"][:20],
            "uptime_s": stats.get("uptime_s")}


def _worker(worker: dict) -> dict:
    return {"name": worker["name"], "capabilities": worker["capabilities"], "slots": worker["slots"],
            "running": worker["running"], "load": worker["load"],
            "last_heartbeat_s_ago": worker.get("last_heartbeat_s_ago"), "host": worker.get("host")}


def cancelled(job_id: str, state: str) -> dict:
    return {"job_id": job_id, "state": state}
