"""The test-runner job: fetch the script and its tests from TitanStore, run every test, print each
failure's traceback, keep the output in TitanStore, and exit 1 if any test failed."""

import importlib
import sys
import traceback

from titan_sdk import TitanClient

client = TitanClient()
for name in ("stats.py", "test_stats.py"):
    with open(name, "w") as handle:
        handle.write(client.store_get(f"code_healer/file/{name}"))
sys.path.insert(0, ".")
lines, failed = [], 0
try:
    tests = importlib.import_module("test_stats")
except Exception:
    tests, failed = None, 1
    lines.append("FAIL importing the tests\n" + traceback.format_exc())
for name in sorted(n for n in dir(tests) if n.startswith("test_")) if tests else []:
    try:
        getattr(tests, name)()
        lines.append(f"PASS {name}")
    except Exception:
        failed += 1
        lines.append(f"FAIL {name}\n{traceback.format_exc()}")
output = "\n".join(lines) + f"\n{failed} failed\n"
print(output, end="")
client.store_put("code_healer/test_output", output)
sys.exit(1 if failed else 0)
