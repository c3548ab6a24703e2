"""The documentation dispatcher: one job per source file, docs collected into one Markdown file.

Each .py file of the folder goes into TitanStore (docs/src/NAME); a DAG of document_file.py jobs, one
per file, writes docs/md/NAME back; the dispatcher joins them, in file-name order, into the output file.

    python dispatcher.py [FOLDER] [OUTPUT]     (default: sample_src, ./DOCS.md)
"""

import os
import sys

from titan_sdk import TitanClient, TitanJob

here = os.path.dirname(os.path.abspath(__file__))
folder = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "sample_src"))
output = os.path.abspath(sys.argv[2] if len(sys.argv) > 2 else "DOCS.md")
names = sorted(name for name in os.listdir(folder) if name.endswith(".py"))

client = TitanClient()
jobs = []
for index, name in enumerate(names):
    with open(os.path.join(folder, name), encoding="utf-8") as handle:
        client.store_put(f"docs/src/{name}", handle.read())
    client.store_delete(f"docs/md/{name}")
    jobs.append(TitanJob(f"doc_{index}_{name[:-3]}", os.path.join(here, "document_file.py"), args=[name]))
client.submit_dag("doc_dispatcher", jobs)
final = client.wait([job.job_id for job in jobs], timeout=120)
failed = sorted(job_id for job_id, state in final.items() if state != "COMPLETED")

sections = [client.store_get(f"docs/md/{name}") or f"## `{name}`\n\n_Not documented: its job failed._"
            for name in names]
with open(output, "w", encoding="utf-8") as handle:
    handle.write(f"# Documentation of {os.path.basename(folder)}\n\n" + "\n\n".join(sections) + "\n")
print(f"{len(names) - len(failed)} of {len(names)} files documented into {output}")
raise SystemExit(1 if failed else 0)
