"""The original's file calls, with its argument names and defaults, and submit_yaml positionally."""
import os
import sys
import time

from titan_sdk import TitanClient, TitanJob

client = TitanClient()
print("uploaded:", client.upload_project_folder(folder_path="compat_project", project_name="compat_proj"))
job = TitanJob(job_id="compat_publisher", filename="compat_proj.zip/main.py", is_archive=True)
client.submit_job(job)
while client.get_job_status(job.id) not in ("COMPLETED", "FAILED", "CANCELLED"):
    time.sleep(0.1)
if client.get_job_status(job.id) != "COMPLETED":
    sys.exit("the archive job failed: " + client.fetch_logs(job.id))

saved = client.get_artifact("compat/report")           # the original's default: /tmp/<name>
print("get_artifact saved to", saved)
text = open("/tmp/report", encoding="utf-8").read()
os.remove("/tmp/report")
client.upload_file("steps/step.py")
client.fetch_artifact("step.py")                         # the original's default: the name, here
if text != "made by the compat project" or not os.path.isfile("step.py"):
    sys.exit(f"artifacts did not arrive: {text!r}")

final = client.submit_yaml("pipeline_v1.yaml", "compat-run", True, 1, 60)
print("submit_yaml waited:", final)
if not final or set(final.values()) != {"COMPLETED"}:
    sys.exit("submit_yaml(path, agent_run_id, wait, poll_interval, timeout) did not wait for the DAG")
if client.agent_run("compat-run")["dags"][0]["dag"] != "compat_yaml":
    sys.exit("the second positional argument is the agent run id")
print("FILES OK")
