import os

from titan_sdk import TitanClient

shard = os.environ["TITAN_JOB_ID"]
TitanClient().store_sadd("deep/shards_done", shard)
print(f"deep analysis of shard {shard} on {os.environ['TITAN_WORKER_ID']}")
