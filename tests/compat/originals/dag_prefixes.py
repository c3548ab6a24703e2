"""The original named submitted jobs DAG-<id>; its users passed those names back everywhere."""
import sys
import time

from titan_sdk import TitanClient, TitanJob

client = TitanClient()
print("unknown:", client.get_job_status("compat_never_submitted"))
if client.get_job_status("compat_never_submitted") != "NULL":
    sys.exit("an unknown job should be NULL")

client.submit_job(TitanJob(job_id="compat_root", filename="steps/step.py"))
child = TitanJob(job_id="compat_child", filename="steps/step.py", parents=["DAG-compat_root"])
client.submit_job(child)
while client.get_job_status("DAG-compat_child") not in ("COMPLETED", "FAILED", "CANCELLED"):
    time.sleep(0.1)
print("child:", client.get_job_status("DAG-compat_child"))
if client.get_job_status("DAG-compat_child") != "COMPLETED":
    sys.exit("a parent given as DAG-<id> should be that job")
if "step compat_child" not in client.fetch_logs("DAG-compat_child"):
    sys.exit("logs of DAG-<id> should be the job's")

client.submit_job(TitanJob(job_id="compat_sleepy", filename="steps/sleepy.py"))
while client.get_job_status("DAG-compat_sleepy") != "RUNNING":
    time.sleep(0.1)
client.cancel("DAG-compat_sleepy")
print("sleepy:", client.get_job_status("DAG-compat_sleepy"))
if client.get_job_status("compat_sleepy") != "CANCELLED":
    sys.exit("cancel of DAG-<id> should cancel the job")
print("PREFIXES OK")
