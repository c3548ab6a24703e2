"""A small agent loop that operates Titan through its MCP server, runnable offline.

It does what an LLM agent does with the tools, with a plain function in the model's place: look at the
cluster, decide how wide to fan out, submit a DAG of generated scripts, wait for it on the event
stream, read the results back and check them. Swap `plan()` for a model call and it is an agent.

    titan up &                         # or any master: TITAN_HOST / TITAN_PORT / TITAN_KEYS
    python examples/mcp/agent_loop.py

It starts `python -m titan.mcp` itself over stdio, through the official MCP client.
"""

from __future__ import annotations

import json
import os
import sys
import uuid

import anyio
from mcp import ClientSession, StdioServerParameters, stdio_client

TEXT = """Titan runs Python scripts as jobs on a cluster of workers.
An agent reads logs, decides, and submits more work.
The master routes each job to a worker that offers the capability it needs.
Jobs of a DAG wait for their parents; a gate waits for a person.
TitanStore is a key-value store every job can read and write.
Workers send heartbeats; a worker that goes quiet is declared dead and its jobs run again.
"""

COUNTER = """from titan_sdk import TitanClient
words = len({chunk!r}.split())
TitanClient().store_put({key!r}, words)
print("counted", words, "words")
"""

REDUCER = """from titan_sdk import TitanClient
client = TitanClient()
print("total", sum(int(client.store_get(key)) for key in {keys!r}))
"""


def plan(status: dict, lines: list) -> int:
    """The model's part: how many counting jobs, from the free slots (2 to 8, no more than lines)."""
    free = status["slots"] - status["busy_slots"]
    return max(1, min(len(lines), max(2, min(8, free))))


def dag_jobs(run: str, lines: list, width: int) -> list:
    chunks = ["".join(lines[i::width]) for i in range(width)]
    keys = [f"wordcount/{run}/{i}" for i in range(width)]
    counters = [{"job_id": f"count-{run}-{i}", "script_content": COUNTER.format(chunk=chunk, key=key)}
                for i, (chunk, key) in enumerate(zip(chunks, keys))]
    reducer = {"job_id": f"total-{run}", "parents": [job["job_id"] for job in counters],
               "script_content": REDUCER.format(keys=keys)}
    return [*counters, reducer]


async def call(session: ClientSession, tool: str, **arguments) -> dict:
    result = await session.call_tool(tool, arguments)
    if result.is_error:
        raise SystemExit(f"agent: {tool} failed: {result.content[0].text}")
    return result.structured_content


async def agent(session: ClientSession) -> int:
    status = await call(session, "cluster_status")
    lines = TEXT.splitlines(keepends=True)
    width = plan(status, lines)
    run = uuid.uuid4().hex[:6]
    print(f"agent: {len(status['workers'])} worker(s), {status['slots']} slots: fanning out to {width} jobs")
    jobs = dag_jobs(run, lines, width)
    submitted = await call(session, "submit_dag_pipeline", dag_name=f"wordcount-{run}", jobs_json=json.dumps(jobs),
                           agent_run_id=f"agent-{run}")
    for warning in submitted["warnings"]:
        print(f"agent: warning: {warning}")
    ended = await call(session, "wait_for_jobs", job_ids=submitted["job_ids"], timeout_s=120)
    if not ended["all_completed"]:
        for job_id, state in {**ended["finished"], **ended["pending"]}.items():
            if state != "COMPLETED":
                logs = (await call(session, "get_job_logs", job_id=job_id))["logs"]
                print(f"agent: {job_id} is {state}; its output:\n{logs}")
        return 1
    counts = [int((await call(session, "store_get", key=f"wordcount/{run}/{i}"))["value"]) for i in range(width)]
    total_line = (await call(session, "get_job_logs", job_id=f"total-{run}"))["logs"].strip()
    print(f"agent: counts per job {counts}; the reducer says {total_line!r}")
    expected = len(TEXT.split())
    if total_line != f"total {expected}" or sum(counts) != expected:
        print(f"agent: expected {expected} words in all", file=sys.stderr)
        return 1
    print(f"agent: checked: {expected} words")
    return 0


async def main() -> int:
    passed = {name: value for name, value in os.environ.items() if name.startswith("TITAN_")}
    server = StdioServerParameters(command=sys.executable, args=["-m", "titan.mcp"], env=passed)
    async with stdio_client(server) as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            return await agent(session)


if __name__ == "__main__":
    sys.exit(anyio.run(main))
