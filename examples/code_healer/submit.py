"""The code healer: test, patch, test again, until the tests pass or MAX_ROUNDS is reached.

The script and its tests live in TitanStore (code_healer/file/...), so any worker can test or patch them.
Each round submits a test-runner job; if it fails, a file-manager job patches the script. The healed
script is written to the folder given as the first argument (default ./healed).
"""

import os
import sys

from titan_sdk import TitanClient, TitanJob

MAX_ROUNDS = 5
here = os.path.dirname(os.path.abspath(__file__))
out_dir = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "healed")
client = TitanClient()
for name in ("stats.py", "test_stats.py"):
    with open(os.path.join(here, "project", name)) as handle:
        client.store_put(f"code_healer/file/{name}", handle.read())
client.store_delete("code_healer/patches")

passed = False
for round_number in range(1, MAX_ROUNDS + 1):
    tests = TitanJob(f"code_healer_tests_{round_number}", os.path.join(here, "run_tests.py"))
    client.submit_job(tests)
    state = client.wait(tests.job_id, timeout=60)
    print(f"round {round_number}: tests {state}")
    print("   " + client.fetch_logs(tests.job_id).strip().splitlines()[-1])
    if state == "COMPLETED":
        passed = True
        break
    fix = TitanJob(f"code_healer_fix_{round_number}", os.path.join(here, "fix_code.py"), args=str(round_number))
    client.submit_job(fix)
    fix_state = client.wait(fix.job_id, timeout=60)
    print("   " + client.fetch_logs(fix.job_id).strip().replace("\n", "\n   "))
    if fix_state != "COMPLETED":
        break

os.makedirs(out_dir, exist_ok=True)
with open(os.path.join(out_dir, "stats.py"), "w") as handle:
    handle.write(client.store_get("code_healer/file/stats.py"))
print(f"patches: {sorted(client.store_smembers('code_healer/patches'))}")
print(f"{'tests pass' if passed else 'gave up'} after {round_number} round(s); script written to {out_dir}")
raise SystemExit(0 if passed else 1)
