import os

from titan_sdk import TitanClient

rows = int(TitanClient().store_get("nightly/rows"))
print(f"trained on {rows} rows on {os.environ['TITAN_WORKER_ID']} (attempt {os.environ['TITAN_ATTEMPT']})")
