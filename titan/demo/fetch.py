import os

from titan_sdk import TitanClient

shards = 5
TitanClient().store_put("demo/shards", str(shards))
print(f"fetched {shards} shards of sensor data on {os.environ['TITAN_WORKER_ID']}")
