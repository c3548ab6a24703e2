"""The original's job basics: .id, a millisecond delay, an apostrophe in args, polling get_job_status."""
import sys
import time

from titan_sdk import TitanClient, TitanJob

client = TitanClient()
quote = TitanJob(job_id="compat_quote", filename="steps/echo_args.py", args="it's done")
later = TitanJob(job_id="compat_later", filename="steps/step.py", delay=1500, parents=[quote.id])
client.submit_dag("COMPAT_BASICS", [quote, later])
print(f"submitted {quote.id} and {later.id}")

submitted = time.time()
while client.get_job_status(later.id) not in ("COMPLETED", "FAILED", "CANCELLED"):
    if client.get_job_status(later.id) == "PENDING" and client.get_job_status(quote.id) == "COMPLETED":
        print("while delayed:", client.job_info(later.id)["reason"])
    time.sleep(0.1)
waited = time.time() - submitted

print("quote:", client.get_job_status(quote.id), client.fetch_logs(quote.id).strip())
print("later:", client.get_job_status(later.id), f"after {waited:.1f}s")
if client.get_job_status(quote.id) != "COMPLETED" or "\"it's\", 'done'" not in client.fetch_logs(quote.id):
    sys.exit("the apostrophe in args failed the job")
if waited < 1.5 or waited > 15:
    sys.exit(f"delay=1500 should hold the job about 1.5 s, it took {waited:.1f}s")
print("BASICS OK")
