import os

from titan_sdk import TitanClient

rows = [{"id": i, "value": i * i} for i in range(100)]
TitanClient().store_put("nightly/rows", str(len(rows)))
print(f"extracted {len(rows)} rows on {os.environ['TITAN_WORKER_ID']}")
