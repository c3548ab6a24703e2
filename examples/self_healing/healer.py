"""Mode 2, the self-healing loop (the seed's third example): read a job's logs, decide, remediate.

`llm_agent` here is a small rule-based analyzer; put an LLM call behind the same `analyze_failure`.
"""

from dataclasses import dataclass

from titan_sdk import TitanClient, TitanJob


@dataclass
class Decision:
    action: str
    reason: str
    recommended_hardware: str = "GENERAL"


class RuleBasedAnalyzer:
    RULES = [
        ("MemoryError", "the run ran out of memory", "HIGH_MEMORY"),
        ("CUDA out of memory", "the GPU ran out of memory", "GPU"),
    ]

    def analyze_failure(self, logs: str) -> Decision:
        for needle, reason, hardware in self.RULES:
            if needle in logs:
                return Decision("DEPLOY_PATCH", reason, hardware)
        return Decision("NONE", "no known failure signature")


llm_agent = RuleBasedAnalyzer()

client = TitanClient()
job_id = "flaky_training_run"
# 1. Fetch remote execution logs via Titan's protocol
logs = client.fetch_logs(job_id)
# 2. AI Evaluation: An LLM Agent analyzes the physical execution logs
decision = llm_agent.analyze_failure(logs)
# 3. Act on the LLM's dynamic decision
if decision.action == "DEPLOY_PATCH":
    print(f"[AGENT] Root cause: {decision.reason}. Deploying patch...")
    # Programmatically create a remediation job on the fly
    fix_job = TitanJob(
        job_id=f"{job_id}_fix",
        filename="scripts/safe_mode_patch.py",
        # The agent dynamically requests specific capabilities based on the failure!
        requirement=decision.recommended_hardware  # e.g., "HIGH_MEMORY"
    )
    # 4. Dispatch the new task to the cluster
    client.submit_job(fix_job)
else:
    print("[AGENT] Run healthy or failure is non-critical. Sequence complete.")
