"""Following submitted jobs to their end from a shell (`titan submit --wait`, `titan run --wait`): a progress
bar on a terminal, one line per job elsewhere, and the same last line and exit code either way."""

from __future__ import annotations

import sys
import time
from collections import Counter
from contextlib import contextmanager
from typing import Dict, Iterator, List, Optional

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.text import Text

from titan import defaults
from titan.cli.common import CommandError, console, note
from titan.core.errors import MasterUnreachable
from titan.core.queries import NO_WORKER_REASON

FINAL_ORDER = ("COMPLETED", "FAILED", "CANCELLED")
TIMEOUT_HELP = (f"give up after this many seconds, whatever takes long: reaching the master, or with --wait "
                f"the jobs (default: {defaults.CLIENT_TIMEOUT_S:g} s to reach the master; jobs as long as they "
                "take). Jobs keep running when it gives up")


class ProgressWithNote(Progress):
    """A progress bar with a line of text under it (why jobs wait), the way rich lets a Progress add
    renderables."""

    note = ""

    def get_renderables(self):
        yield self.make_tasks_table(self.tasks)
        if self.note:
            yield Text(self.note, style="yellow")


def wait_with_progress(client, job_ids: List[str], label: str, timeout: Optional[float] = None,
                       command_started: Optional[float] = None, dag: Optional[str] = None) -> int:
    """Follow the jobs (of `dag`, if one) to their end: a progress bar on a terminal, else one line per job
    that ends; why a job cannot be placed, at once, under the bar or as a line. 0 if all completed, 1 if
    not (each failure's reason is printed). `timeout`: the command's --timeout, from `command_started`."""
    started = time.monotonic()
    limit = None if timeout is None else ((command_started or started) + timeout, timeout)
    out = console()
    counts: Counter = Counter()
    if out.is_terminal:
        with ProgressWithNote(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                              TextColumn("{task.fields[counts]}"), TimeElapsedColumn(), console=out) as progress:
            task = progress.add_task(label, total=len(job_ids), counts="")

            def advance(job_id: str, state: str) -> None:
                counts[state] += 1
                progress.update(task, advance=1, counts=_counts_text(counts))

            def note_under_bar(reasons: Dict[str, str]) -> None:
                progress.note = grouped(reasons)
                progress.refresh()

            final = _wait(client, job_ids, dag, limit, advance, note_under_bar)
    else:
        def line(job_id: str, state: str) -> None:
            print(f"{job_id} {state}", flush=True)

        final = _wait(client, job_ids, dag, limit, line, PlainReasons())
    return _report_end(client, final, time.monotonic() - started)


def grouped(reasons: Dict[str, str], named: int = 3) -> str:
    """One line per distinct reason, naming its first few jobs (a 1,000-job fan-out is one line)."""
    jobs_by_reason: Dict[str, List[str]] = {}
    for job_id, reason in reasons.items():
        jobs_by_reason.setdefault(reason, []).append(job_id)
    return "\n".join(f"{', '.join(jobs[:named])}{f' and {len(jobs) - named} more' if len(jobs) > named else ''} "
                     f"wait{'s' if len(jobs) == 1 else ''}: {reason}" for reason, jobs in jobs_by_reason.items())


class PlainReasons:
    """Prints each job's reason for waiting once (and again only if it changes)."""

    def __init__(self):
        self.shown: Dict[str, str] = {}

    def __call__(self, reasons: Dict[str, str]) -> None:
        for job_id, reason in reasons.items():
            if self.shown.get(job_id) != reason:
                print(f"{job_id} QUEUED: {reason}", flush=True)
                self.shown[job_id] = reason


def _wait(client, job_ids: List[str], dag: Optional[str], limit: Optional[tuple], on_final,
          show_reasons) -> Dict[str, str]:
    """client.wait in slices of CLI_PLACEMENT_CHECK_S, asking between them why waiting jobs are not placed;
    until `limit` (deadline, the --timeout it comes from), if one."""
    final: Dict[str, str] = {}
    deadline = None if limit is None else limit[0]

    def settle(job_id: str, state: str) -> None:
        final[job_id] = state
        on_final(job_id, state)

    while True:
        waiting = [job_id for job_id in job_ids if job_id not in final]
        if not waiting:
            return final
        show_reasons(unplaceable(client, waiting, dag))
        now = time.monotonic()
        if deadline is not None and now >= deadline:
            raise gave_up(limit[1], f"these keep running: {', '.join(waiting)}")
        try:
            client.wait(waiting, timeout=min(defaults.CLI_PLACEMENT_CHECK_S, (deadline or now + 60) - now),
                        on_final=settle)
        except MasterUnreachable:
            raise
        except TimeoutError:
            continue


def unplaceable(client, job_ids: List[str], dag: Optional[str]) -> Dict[str, str]:
    """{job id: the master's reason} for the jobs that wait because no connected worker offers what they
    need; one request for a DAG, one per job otherwise."""
    wanted = set(job_ids)
    if dag and not _some_requirement_unmet(client.stats()):   # cheap counters first: a DAG may be huge
        return {}
    infos = client.dag_status(dag)["jobs"] if dag else [client.job_info(job_id) for job_id in job_ids]
    return {info["job_id"]: info["reason"] for info in infos
            if info["job_id"] in wanted and info["state"] == "QUEUED"
            and (info.get("reason") or "").startswith(NO_WORKER_REASON)}


def _some_requirement_unmet(stats: dict) -> bool:
    offered = {capability for worker in stats["workers"] for capability in worker["capabilities"]}
    return any(count and requirement not in offered for requirement, count in stats["queued_by_requirement"].items())


def warn_if_case_differs(client, command: str, requirements) -> None:
    """Capabilities are case-sensitive: warn when a requirement no connected worker offers differs from an
    offered capability only by case (gpu / GPU)."""
    offered = {cap for worker in client.stats()["workers"] for cap in worker["capabilities"]}
    for requirement in sorted(set(requirements) - offered):
        for capability in sorted(offered):
            if capability.lower() == requirement.lower():
                note(command, f"warning: no connected worker offers {requirement!r}, but one offers "
                              f"{capability!r}: capabilities are case-sensitive")


@contextmanager
def said_to_keep_running_on_ctrl_c(what: str, cancel: str) -> Iterator[None]:
    """Ctrl-C stops the waiting, not the jobs: say so, and how to cancel them (exit 130, as for SIGINT)."""
    try:
        yield
    except KeyboardInterrupt:
        raise CommandError(f"stopped waiting; {what} keeps running on the cluster (cancel it with: {cancel})",
                           exit_code=130) from None


def gave_up(timeout: float, still_running: str) -> CommandError:
    return CommandError(f"gave up after --timeout {timeout:g}s; {still_running}")


def _counts_text(counts: Counter) -> str:
    return "  ".join(f"{state} {counts[state]}" for state in FINAL_ORDER if counts[state])


def _report_end(client, final: Dict[str, str], elapsed: float) -> int:
    for job_id, state in final.items():
        if state != "COMPLETED":
            print(f"{job_id} {state}: {client.job_info(job_id).get('reason') or 'no reason given'}",
                  file=sys.stderr)
    return summarize(final, elapsed)


def summarize(final: Dict[str, str], elapsed: float) -> int:
    """The last line of a wait, the same on a terminal and off one: 0 if every job completed, else 1."""
    completed = sum(1 for state in final.values() if state == "COMPLETED")
    print(f"{completed} of {len(final)} jobs completed in {elapsed:.2f}s", flush=True)
    return 0 if completed == len(final) else 1
