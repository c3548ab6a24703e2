"""A driver in the original's style: submit_yaml with the original's positional order, then poll."""
import sys
import time

from titan_sdk import TitanClient

client = TitanClient()
client.submit_yaml("pipeline_v1.yaml", None, False)
jobs = ["compat_prepare", "compat_left", "compat_right", "compat_join"]
deadline = time.time() + 30
while time.time() < deadline:
    states = {job: client.get_job_status(job) for job in jobs}
    if all(state in ("COMPLETED", "FAILED") for state in states.values()):
        break
    time.sleep(0.2)
print(states)
if set(states.values()) != {"COMPLETED"}:
    sys.exit("not all jobs completed")
if "args=['7']" not in client.fetch_logs("compat_prepare"):
    sys.exit("the numeric arg did not reach the job")
print("YAML OK")
