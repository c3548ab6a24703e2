"""One step of the YAML examples: records in TitanStore that it ran, after its parents."""

import os
import sys

from titan_sdk import TitanClient

client = TitanClient()
dag, job = os.environ["TITAN_DAG_ID"], os.environ["TITAN_JOB_ID"]
order = client.store_incr(f"{dag}/order")
client.store_put(f"{dag}/ran/{job}", str(order))
print(f"{job} ({sys.argv[1]}) ran as step {order} of {dag} on {os.environ['TITAN_WORKER_ID']}")
