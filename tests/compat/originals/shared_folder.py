"""A hand-off through the current directory, as jobs of one DAG on one worker shared it in the original.
Both scripts are called work.py: each job must still run its own."""
import sys
import time

from titan_sdk import TitanClient, TitanJob

client = TitanClient()
writer = TitanJob(job_id="compat_writer", filename="writer/work.py")
reader = TitanJob(job_id="compat_reader", filename="reader/work.py", parents=[writer.id], affinity=True)
client.submit_dag("compat_handoff", [writer, reader])
for job in (writer, reader):
    while client.get_job_status(job.id) not in ("COMPLETED", "FAILED", "CANCELLED"):
        time.sleep(0.1)
    print(job.id, client.get_job_status(job.id), client.fetch_logs(job.id).strip())
if client.get_job_status(reader.id) != "COMPLETED":
    sys.exit("the reader could not read what the writer left in the shared folder")
print("SHARED OK")
