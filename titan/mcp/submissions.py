"""What an agent submits, checked before anything reaches the master: the jobs of `jobs_json`, built as
TitanJobs from inline script content (no file is written), and the capabilities no worker offers.

A bad submission raises ValueError naming the job and the field; nothing is sent for it."""

from __future__ import annotations

import json
import re
from typing import Dict, Iterable, List, Optional, Union

from titan import defaults
from titan.core.jobs import gate_id
from titan.mcp import deployed
from titan_sdk import TitanClient, TitanJob

# The keys of one job in jobs_json: the original Titan's, and script_name for a deployed script.
JOB_FIELDS = {"job_id": str, "script_content": str, "script_name": str, "args": str, "requirement": str,
              "priority": int, "parents": list, "hitl_message": str}
SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]")


def inline_job(job_id: str, script_content: str, args: str = "", requirement: str = defaults.DEFAULT_REQUIREMENT,
               priority: int = defaults.DEFAULT_PRIORITY, parents: Iterable[str] = (),
               hitl_message: Optional[str] = None) -> TitanJob:
    """A Python job whose script is `script_content`, named '<job_id>.py' on the worker."""
    if not isinstance(job_id, str) or not job_id.strip():
        raise ValueError(f"job_id must be a non-empty string, got {job_id!r}")
    if not script_content.strip():
        raise ValueError(f"job {job_id!r}: script_content is empty (give the Python script to run)")
    requirement = requirement or defaults.DEFAULT_REQUIREMENT
    return TitanJob(job_id, script_file_name(job_id), args=args, requirement=requirement, priority=priority,
                    parents=list(parents), hitl_message=hitl_message or None, content=script_content)


def script_file_name(job_id: str) -> str:
    """The job's id as a file name a worker can use: tracebacks then name the job."""
    return SAFE_NAME.sub("_", job_id)[:100] + ".py"


def jobs_from_json(jobs_json: Union[str, list]) -> List[TitanJob]:
    """The jobs of a DAG given as a JSON array of objects (or the array itself, as some clients send)."""
    entries = _parse_array(jobs_json)
    jobs, seen = [], set()
    for index, entry in enumerate(entries):
        job = _job_from_entry(index, entry)
        if job.job_id in seen:
            raise ValueError(f"jobs_json: job_id {job.job_id!r} appears twice (job ids must be unique)")
        seen.add(job.job_id)
        jobs.append(job)
    return jobs


def _parse_array(jobs_json: Union[str, list]) -> list:
    if isinstance(jobs_json, str):
        try:
            jobs_json = json.loads(jobs_json)
        except json.JSONDecodeError as exc:
            raise ValueError(f"jobs_json is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}; "
                             "give a JSON array of job objects") from None
    if not isinstance(jobs_json, list) or not jobs_json:
        raise ValueError(f"jobs_json must be a non-empty JSON array of job objects, got {_kind(jobs_json)}")
    return jobs_json


def _job_from_entry(index: int, entry) -> TitanJob:
    label = f"jobs_json[{index}]"
    if not isinstance(entry, dict):
        raise ValueError(f"{label} must be a JSON object with job_id and script_content, got {_kind(entry)}")
    unknown = sorted(set(entry) - set(JOB_FIELDS))
    if unknown:
        raise ValueError(f"{label}: unknown field(s) {', '.join(unknown)}; a job may have {', '.join(JOB_FIELDS)}")
    if not isinstance(entry.get("job_id"), str) or not entry["job_id"].strip():
        raise ValueError(f"{label} has no job_id (a non-empty string naming the job)")
    label = f"jobs_json job {entry['job_id']!r}"
    fields = {name: _checked(label, name, value) for name, value in entry.items()}
    parents = fields.pop("parents", [])
    if not all(isinstance(parent, str) and parent for parent in parents):
        raise ValueError(f"{label}: parents must be a list of job id strings, got {parents!r}")
    options = {"args": fields.get("args", ""), "requirement": fields.get("requirement", ""),
               "priority": fields.get("priority", defaults.DEFAULT_PRIORITY), "parents": parents,
               "hitl_message": fields.get("hitl_message")}
    has_content, has_name = "script_content" in fields, "script_name" in fields
    if has_content == has_name:
        raise ValueError(f"{label} needs exactly one of script_content (the script itself) or script_name "
                         "(a script stored with deploy_script)")
    if has_name:
        return deployed.job_running(fields["job_id"], fields["script_name"], options)
    return inline_job(fields["job_id"], fields["script_content"], **options)


def _checked(label: str, name: str, value):
    wanted = JOB_FIELDS[name]
    if name == "hitl_message" and value is None:
        return None
    if name == "parents" and isinstance(value, str):
        return [value]   # one parent, as TitanJob accepts it
    if wanted is int and isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)   # "priority": "5", as the original's YAML allowed
    if not isinstance(value, wanted) or (wanted is int and isinstance(value, bool)):
        raise ValueError(f"{label}: {name} must be {_type_name(wanted)}, got {_kind(value)}")
    return value


def gates_of(jobs: Iterable[TitanJob]) -> List[str]:
    return [gate_id(job.job_id) for job in jobs if job.hitl_message]


def requirement_warnings(client: TitanClient, jobs: Iterable[TitanJob]) -> List[str]:
    """One line per capability the jobs need that no connected worker offers: they would wait silently."""
    workers = client.stats()["workers"]
    offered = {defaults.DEFAULT_REQUIREMENT} | {cap for worker in workers for cap in worker["capabilities"]}
    needed: Dict[str, List[str]] = {}
    for job in jobs:
        if job.requirement not in offered:
            needed.setdefault(job.requirement, []).append(job.job_id)
    return [_unoffered(requirement, job_ids, offered, len(workers)) for requirement, job_ids in needed.items()]


def _unoffered(requirement: str, job_ids: List[str], offered: set, worker_count: int) -> str:
    named = ", ".join(repr(job_id) for job_id in job_ids[:5]) + (" ..." if len(job_ids) > 5 else "")
    line = (f"no connected worker offers capability {requirement} (needed by {named}); "
            f"the {worker_count} connected worker(s) offer {', '.join(sorted(offered))}: "
            "these jobs wait in the queue until such a worker connects")
    near = [capability for capability in offered if capability.lower() == requirement.lower()]
    return line + (f" (did you mean {near[0]}? capabilities are case-sensitive)" if near else "")


def _kind(value) -> str:
    return "null" if value is None else f"{type(value).__name__} {json.dumps(value, default=str)[:60]}"


def _type_name(wanted: type) -> str:
    return {str: "a string", int: "an integer", list: "a list"}[wanted]
