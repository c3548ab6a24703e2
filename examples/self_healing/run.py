"""Run the flaky job, let the healer read its logs and act: a fix on other hardware, or an escalation.

FAILURE=ram (default), cuda or module picks how the training run fails.
"""

import os
import subprocess
import sys

from titan_sdk import TitanClient, TitanJob

here = os.path.dirname(os.path.abspath(__file__))
NO_FIX_SUBMITTED = 3   # healer.py's exit code when it escalated or did nothing
client = TitanClient()
client.submit_job(TitanJob(job_id="flaky_training_run", filename=os.path.join(here, "flaky_training_run.py"),
                           args=os.environ.get("FAILURE", "ram")))
print("flaky_training_run:", client.wait("flaky_training_run", timeout=60), flush=True)

healer = subprocess.run([sys.executable, os.path.join(here, "healer.py"), "flaky_training_run"], cwd=here)
if healer.returncode == NO_FIX_SUBMITTED:
    print("no fix job was submitted")
    raise SystemExit(0)
if healer.returncode != 0:
    raise SystemExit(f"the healer failed (exit code {healer.returncode})")

fix = client.job_info("flaky_training_run_fix")
offered = {capability for worker in client.stats()["workers"] for capability in worker["capabilities"]}
if fix["requirement"] not in offered:
    client.cancel("flaky_training_run_fix")
    raise SystemExit(f"no connected worker offers {fix['requirement']}, which the fix needs: start the cluster as "
                     f"examples/self_healing/README.md says (titan up --cap HIGH_MEMORY)")
state = client.wait("flaky_training_run_fix", timeout=60)
info = client.job_info("flaky_training_run_fix")
print(f"flaky_training_run_fix: {state} on {info['worker']} (needs {info['requirement']})")
print(client.fetch_logs("flaky_training_run_fix"), end="")
raise SystemExit(0 if state == "COMPLETED" else 1)
