"""Following submitted jobs to their end from a shell (`titan submit --wait`, `titan run --wait`): a progress
bar on a terminal, one line per job elsewhere, and the same last line and exit code either way."""

from __future__ import annotations

import sys
import time
from collections import Counter
from typing import Dict, List, Optional

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from titan import defaults
from titan.cli.common import CommandError, console
from titan.core.errors import MasterUnreachable

FINAL_ORDER = ("COMPLETED", "FAILED", "CANCELLED")
TIMEOUT_HELP = (f"give up after this many seconds, whatever takes long: reaching the master, or with --wait "
                f"the jobs (default: {defaults.CLIENT_TIMEOUT_S:g} s to reach the master; jobs as long as they "
                "take). Jobs keep running when it gives up")


def wait_with_progress(client, job_ids: List[str], label: str, timeout: Optional[float] = None,
                       command_started: Optional[float] = None) -> int:
    """Follow the jobs to their end: a progress bar on a terminal, else one line per job that ends.
    0 if all completed, 1 if not (each failure's reason is printed). `timeout`: the command's --timeout,
    counted from `command_started`."""
    started = time.monotonic()
    command_started = command_started or started
    out = console()
    counts: Counter = Counter()
    if out.is_terminal:
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                      TextColumn("{task.fields[counts]}"), TimeElapsedColumn(), console=out) as progress:
            task = progress.add_task(label, total=len(job_ids), counts="")

            def advance(job_id: str, state: str) -> None:
                counts[state] += 1
                progress.update(task, advance=1, counts=_counts_text(counts))

            final = _wait(client, job_ids, timeout, command_started, advance)
    else:
        def line(job_id: str, state: str) -> None:
            print(f"{job_id} {state}", flush=True)

        final = _wait(client, job_ids, timeout, command_started, line)
    return _report_end(client, final, time.monotonic() - started)


def _wait(client, job_ids: List[str], timeout: Optional[float], command_started: float,
          on_final) -> Dict[str, str]:
    final: Dict[str, str] = {}
    left = None if timeout is None else max(0.001, timeout - (time.monotonic() - command_started))

    def settle(job_id: str, state: str) -> None:
        final[job_id] = state
        on_final(job_id, state)

    try:
        client.wait(job_ids, timeout=left, on_final=settle)
    except MasterUnreachable:
        raise
    except TimeoutError:
        raise gave_up(timeout, f"these keep running: {', '.join(j for j in job_ids if j not in final)}") from None
    return final


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
