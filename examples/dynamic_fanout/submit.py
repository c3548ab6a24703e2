"""Mode 1.5, dynamic logic: plain Python decides which graph to submit (the seed's second example).

Traffic comes from the TRAFFIC environment variable here, standing in for your own monitoring.
"""

import os

from titan_sdk import TitanClient, TitanJob


def get_current_traffic() -> int:
    return int(os.environ.get("TRAFFIC", "42"))


client = TitanClient()
traffic_load = get_current_traffic()  # Your custom monitoring logic
if traffic_load > 80:
    print("[HIGH] High Traffic. Switching to lightweight 'FAST' pipeline.")
    fast_job = TitanJob(job_id="fast_scan", filename="fast_path.py")
    client.submit_job(fast_job)
    submitted = ["fast_scan"]
else:
    print("[LOW] Normal Traffic. Generating distributed 'DEEP' analysis DAG.")
    # Programmatically generate 10 parallel tasks
    deep_tasks = [
        TitanJob(job_id=f"deep_{i}", filename="deep_path.py")
        for i in range(10)
    ]
    client.submit_dag("DEEP_PIPELINE", deep_tasks)
    submitted = [task.job_id for task in deep_tasks]

final = client.wait(submitted, timeout=120)
print(final)
raise SystemExit(0 if set(final.values()) == {"COMPLETED"} else 1)
