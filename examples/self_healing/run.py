"""Run the flaky job, let the healer read its logs and submit a fix on a HIGH_MEMORY worker."""

import os
import subprocess
import sys

from titan_sdk import TitanClient, TitanJob

here = os.path.dirname(os.path.abspath(__file__))
client = TitanClient()
client.submit_job(TitanJob(job_id="flaky_training_run", filename=os.path.join(here, "flaky_training_run.py")))
print("flaky_training_run:", client.wait("flaky_training_run", timeout=60))

subprocess.run([sys.executable, os.path.join(here, "healer.py")], cwd=here, check=True)

state = client.wait("flaky_training_run_fix", timeout=60)
info = client.job_info("flaky_training_run_fix")
print(f"flaky_training_run_fix: {state} on {info['worker']} (needs {info['requirement']})")
print(client.fetch_logs("flaky_training_run_fix"), end="")
raise SystemExit(0 if state == "COMPLETED" else 1)
