"""The original's module path and constants: from titan_sdk.titan_sdk import ..., TITAN_PORT and friends."""
import os
import sys
import time

import titan_sdk.titan_sdk as sdk
from titan_sdk.titan_sdk import TITAN_HOST, TITAN_PORT, VERSION, TitanClient, TitanJob

print(f"constants: {TITAN_HOST}:{TITAN_PORT} version {VERSION}")
if TITAN_PORT != int(os.environ["TITAN_PORT"]) or TITAN_HOST != os.environ["TITAN_HOST"]:
    sys.exit("the constants should come from the environment")

# As with the original, a script may point the SDK at its master through the module's settings.
port = int(os.environ.pop("TITAN_PORT"))
sdk.TITAN_PORT = port
client = TitanClient()
client.submit_job(TitanJob("compat_constants", "steps/step.py"))
while client.get_job_status("compat_constants") != "COMPLETED":
    time.sleep(0.1)
print("CONSTANTS OK")
