"""`titan run` (a YAML pipeline as one DAG, followed until it ends) and `titan approve` / `titan reject`
(a human-in-the-loop gate's decision)."""

from __future__ import annotations

import sys
import time
import warnings
from typing import List, Optional

from titan.argtypes import positive_float
from titan.cli import waiting
from titan.cli.waiting import FINAL_ORDER
from titan.core.services import SERVICE_UP_TOPIC, reported_state
from titan.cli.common import add_master_options, connect, console
from titan.core.errors import MasterUnreachable
from titan.core.queries import NO_WORKER_REASON

FOLLOW_QUIET_S = 1.0   # with no event for this long, ask the master whether the DAG has finished


def add_commands(commands) -> None:
    pipeline = commands.add_parser("run", help="submit a YAML pipeline (original Titan format)",
                                   description="Check a pipeline file and submit it as one DAG. With --wait, "
                                               "show each job's state as it changes; exit 1 if any job "
                                               "did not complete.")
    pipeline.add_argument("pipeline", help="the YAML file")
    pipeline.add_argument("--wait", action="store_true", help="follow the pipeline until it ends")
    pipeline.add_argument("--timeout", type=positive_float, default=None, help=waiting.TIMEOUT_HELP)
    add_master_options(pipeline, timeout=False)
    pipeline.set_defaults(run=run_pipeline)

    for verb, explanation in (("approve", "let the jobs below a human-in-the-loop gate run"),
                              ("reject", "cancel everything below a human-in-the-loop gate")):
        gate = commands.add_parser(verb, help=explanation, description=f"{explanation[0].upper()}"
                                   f"{explanation[1:]}. Gates are named hitl-gate-<job id>.")
        gate.add_argument("gate", help="the gate's id, e.g. hitl-gate-train")
        if verb == "reject":
            gate.add_argument("--reason", default="", help="recorded as the gate's reason")
        add_master_options(gate)
        gate.set_defaults(run=run_gate_decision)


def run_gate_decision(args) -> int:
    with connect(args) as client:
        if args.command == "approve":
            state = client.approve(args.gate)
        else:
            state = client.reject(args.gate, args.reason)
    print(f"{args.gate}: {state}")
    return 0


def _load_with_warnings(path: str):
    """The pipeline; keys it ignores are told on stderr as one plain line each."""
    from titan_sdk.pipeline import PipelineWarning, load_pipeline

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PipelineWarning)
        pipeline = load_pipeline(path)
    for message in pipeline.warnings:
        print(f"titan run: warning: {message}", file=sys.stderr)
    return pipeline


def run_pipeline(args) -> int:
    pipeline = _load_with_warnings(args.pipeline)
    started = time.monotonic()
    with connect(args) as client:
        if not args.wait:
            submit(client, pipeline, name_jobs=True)
            return 0
        with waiting.said_to_keep_running_on_ctrl_c(f"pipeline {pipeline.name!r}",
                                                    f"titan cancel --dag {pipeline.name}"):
            return _submit_and_follow(client, pipeline, args, started)


def _submit_and_follow(client, pipeline, args, started: float) -> int:
    job_ids = [job.job_id for job in pipeline.jobs]   # the pipeline's own jobs: its gates are no jobs
    if console().is_terminal:   # a progress bar; elsewhere, a line per state change (below)
        submit(client, pipeline)
        return waiting.wait_with_progress(client, job_ids, label=pipeline.name, timeout=args.timeout,
                                          command_started=started, dag=pipeline.name)
    with client.events(topics=["job.", "dag.", SERVICE_UP_TOPIC]) as events:
        submit(client, pipeline)
        try:
            final = follow_dag(client, events, pipeline.name, started, args.timeout, job_ids)
        except MasterUnreachable:
            raise
        except TimeoutError:
            raise waiting.gave_up(args.timeout, f"the pipeline's unfinished jobs keep running (titan "
                                                f"status {pipeline.name} shows them)") from None
    return waiting.summarize({job_id: final.get(job_id, "unknown") for job_id in job_ids},
                             time.monotonic() - started)


def submit(client, pipeline, name_jobs: bool = False) -> None:
    client.submit_pipeline(pipeline)
    job_ids = [job.job_id for job in pipeline.jobs]
    print(f"submitted pipeline {pipeline.name!r}: {len(job_ids)} jobs" + (f" ({', '.join(job_ids)})" if name_jobs
                                                                          else ""), flush=True)
    waiting.warn_if_case_differs(client, "run", [job.requirement for job in pipeline.jobs])


def print_logs(client, job_ids: List[str]) -> None:
    print("\nlogs:")
    for job_id in job_ids:
        for line in client.fetch_logs(job_id).splitlines() or ["(no output)"]:
            print(f"  {job_id:<9} | {line}")


def follow_dag(client, events, dag: str, started: float, timeout: Optional[float], job_ids=()) -> dict:
    """Print each job's state change until the DAG has finished, or until each of `job_ids` has ended or
    (a service) is up; returns {job_id: last state}, a service that is up counted COMPLETED. When events
    were lost, or none came for a while (the lost one may have been the last), the master's view of the
    DAG settles it; it also says, at once and then whenever it looks, why a job no worker can run waits."""
    final, reasons_shown = {}, {}
    deadline = None if timeout is None else started + timeout
    event = None
    while True:
        if event is None or events.take_gap() is not None:
            described = client.dag_status(dag)
            states = {job["job_id"]: reported_state(job["state"], job["service_up"]) for job in described["jobs"]}
            if described["finished"] or _all_settled(states, job_ids):
                return {**final, **states}
            show_unplaceable(described["jobs"], reasons_shown, started)
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"DAG {dag!r} did not finish within {timeout:g}s")
        quiet = FOLLOW_QUIET_S if deadline is None else min(FOLLOW_QUIET_S, max(0.0, deadline - time.monotonic()))
        event = events.get(timeout=quiet)
        if event is not None and event.get("dag") == dag:
            if event["topic"] == "dag.finished":
                return final
            if event["topic"] == SERVICE_UP_TOPIC or event["topic"].startswith("job."):
                final[event["job_id"]] = _followed_state(event, started)
            if _all_settled(final, job_ids):
                return final


def show_unplaceable(jobs: list, shown: dict, started: float) -> None:
    """A line for each job that waits because no connected worker offers what it needs, once per reason."""
    for job in jobs:
        reason = job.get("reason") or ""
        if job["state"] == "QUEUED" and reason.startswith(NO_WORKER_REASON) and shown.get(job["job_id"]) != reason:
            print_state_change(job, started)
            shown[job["job_id"]] = reason


def _followed_state(event: dict, started: float) -> str:
    """Print the change; the job's state as `titan run --wait` counts it (a service up: COMPLETED)."""
    if event["topic"] == SERVICE_UP_TOPIC:
        print_state_change({**event, "state": "UP"}, started)
        return reported_state(event["state"], True)
    print_state_change(event, started)
    return event["state"]


def _all_settled(states: dict, job_ids) -> bool:
    return bool(job_ids) and all(states.get(job_id) in FINAL_ORDER for job_id in job_ids)


def print_state_change(event: dict, started: float) -> None:
    where = f" on {event['worker']}" if event.get("worker") else ""
    why = f"  ({event['reason']})" if event.get("reason") else ""
    print(f"  {time.monotonic() - started:7.3f}s  {event['job_id']:<9} {event['state']:<10}{where}{why}",
          flush=True)
