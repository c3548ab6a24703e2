"""Run the flaky job, let the healer read its logs and act: a fix on other hardware, or an escalation.

FAILURE=ram (default), cuda or module picks how the training run fails.
"""

import os
import subprocess
import sys

from titan_sdk import TitanClient, TitanJob

here = os.path.dirname(os.path.abspath(__file__))
client = TitanClient()
client.submit_job(TitanJob(job_id="flaky_training_run", filename=os.path.join(here, "flaky_training_run.py"),
                           args=os.environ.get("FAILURE", "ram")))
print("flaky_training_run:", client.wait("flaky_training_run", timeout=60))

subprocess.run([sys.executable, os.path.join(here, "healer.py"), "flaky_training_run"], cwd=here, check=True)

try:
    state = client.wait("flaky_training_run_fix", timeout=60)
except LookupError:
    print("no fix job was submitted")
    raise SystemExit(0)
info = client.job_info("flaky_training_run_fix")
print(f"flaky_training_run_fix: {state} on {info['worker']} (needs {info['requirement']})")
print(client.fetch_logs("flaky_training_run_fix"), end="")
raise SystemExit(0 if state == "COMPLETED" else 1)
