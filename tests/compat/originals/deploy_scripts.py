"""The original's deploy_script: keep a worker script on the master, then submit jobs naming only its file."""
import sys
import time

from titan_sdk import TitanClient, TitanJob

client = TitanClient()
print("deploy:", client.deploy_script("workers/remote_worker.py"))
print("deploy:", client.deploy_script("workers/clash.py"))

remote = TitanJob(job_id="compat_remote", filename="remote_worker.py", args="a b")   # not here: deployed
clash = TitanJob(job_id="compat_clash", filename="clash.py")                        # here too: local wins
client.submit_dag("compat_deployed", [remote, clash])
for job in (remote, clash):
    while client.get_job_status(job.id) not in ("COMPLETED", "FAILED", "CANCELLED"):
        time.sleep(0.1)
    print(job.id, client.get_job_status(job.id), client.fetch_logs(job.id).strip())

try:
    client.submit_job(TitanJob(job_id="compat_nowhere", filename="never_deployed.py"))
    sys.exit("a script neither here nor deployed should be refused")
except FileNotFoundError as exc:
    print("refused:", exc)
print("DEPLOY OK")
