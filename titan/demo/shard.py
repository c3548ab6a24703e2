import os
import sys

from titan_sdk import TitanClient

shard = int(sys.argv[1])
total = sum(i * i for i in range(shard * 100_000, (shard + 1) * 100_000)) % 1_000_003
TitanClient().store_incr("demo/checksum", total)
print(f"shard {shard}: checksum part {total} on {os.environ['TITAN_WORKER_ID']}")
