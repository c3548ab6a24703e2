"""Mode 2 with memory (the seed's fourth example): submit the agent once; it re-submits itself via
TitanStore-backed memory until it succeeds or, after 3 failures, escalates."""

import os

from titan_sdk import TitanClient, TitanJob

client = TitanClient()
here = os.path.dirname(os.path.abspath(__file__))
client.submit_job(TitanJob(job_id="autonomous_agent", filename=os.path.join(here, "autonomous_agent.py")))

chain = ["autonomous_agent"]
while True:
    state = client.wait(chain[-1], timeout=60)
    print(f"{chain[-1]}: {state}")
    print("   " + client.fetch_logs(chain[-1]).strip().replace("\n", "\n   "))
    follow_up = f"agent_retry_{len(chain)}"
    if client.get_job_status(follow_up) == "NULL":
        # The clone is submitted before the job exits, so if it is not there now it never will be.
        break
    chain.append(follow_up)
print(f"the agent ran {len(chain)} time(s); retry counter now {client.store_get('agent_retry_count')!r}")
