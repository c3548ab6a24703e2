"""The self-healing step: read a failed job's logs, decide, remediate.

The decision goes through titan_sdk.agents: an LLM when TITAN_LLM_COMMAND or TITAN_LLM_URL is set,
otherwise the rules below, which read the logs for known failure signatures.

    python healer.py JOB_ID
"""

import sys

from titan_sdk import TitanClient, TitanJob
from titan_sdk.agents import ESCALATE, RERUN, Remedy, Rule, configured_decider

INSTRUCTIONS = ("You look after training jobs on a Titan cluster whose workers offer GENERAL (CPU), GPU and "
                "HIGH_MEMORY. Read the failed job's logs and say whether to RERUN it on another "
                "requirement, ESCALATE to a person, or do NONE.")

# Order matters: "CUDA out of memory" errors are also *MemoryError*s by name.
RULES = [
    Rule(r"CUDA out of memory",
         lambda match, context: Remedy(RERUN, "the GPU ran out of memory; safe mode on CPU", "GENERAL")),
    Rule(r"MemoryError|Cannot allocate memory",
         lambda match, context: Remedy(RERUN, "the run ran out of memory", "HIGH_MEMORY")),
    Rule(r"No module named '([\w.]+)'",
         lambda match, context: Remedy(ESCALATE, f"module {match[1]!r} is not installed on the worker; "
                                                 f"install it there (pip install {match[1].split('.')[0]})")),
]

NO_FIX_SUBMITTED = 3   # the exit code that tells run.py no fix job is coming
job_id = sys.argv[1] if len(sys.argv) > 1 else "flaky_training_run"
client = TitanClient()
decider = configured_decider(INSTRUCTIONS, RULES)
remedy = decider.decide(client.fetch_logs(job_id))
print(f"[AGENT] decided by {remedy.source}: {remedy.action}")
if remedy.action == RERUN:
    print(f"[AGENT] Root cause: {remedy.reason}. Deploying patch on {remedy.requirement}...")
    client.submit_job(TitanJob(job_id=f"{job_id}_fix", filename="scripts/safe_mode_patch.py",
                               requirement=remedy.requirement))
elif remedy.action == ESCALATE:
    print(f"[AGENT] Escalating to a person: {remedy.reason}")
else:
    print(f"[AGENT] Nothing to do: {remedy.reason}")
raise SystemExit(0 if remedy.action == RERUN else NO_FIX_SUBMITTED)
