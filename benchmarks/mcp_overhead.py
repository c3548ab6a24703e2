"""`python -m benchmarks.mcp_overhead`: what going through `titan mcp` costs, beside the SDK in one sitting.

Starts a local cluster (a master, one worker with 2 slots) and `python -m titan.mcp` over stdio through
the MCP SDK's client, then times, interleaved round by round so both sides see the same machine load:
a ping (MCP tool ping_master vs TitanClient.ping) and one job submitted and waited for (tools
submit_single_job + wait_for_jobs vs submit_job + wait). Prints the medians of each round and overall.
Needs the [mcp] extra.
"""

from __future__ import annotations

import os
import statistics
import sys
import time

import anyio
from mcp import ClientSession, StdioServerParameters, stdio_client

from titan.cluster import LocalCluster, WorkerSpec
from titan_sdk import TitanJob

ROUNDS, PINGS, JOBS = 3, 50, 15


def milliseconds_since(started: float) -> float:
    return (time.perf_counter() - started) * 1000


async def mcp_round(session: ClientSession, round_number: int) -> tuple:
    pings, jobs = [], []
    for _ in range(PINGS):
        started = time.perf_counter()
        await session.call_tool("ping_master", {})
        pings.append(milliseconds_since(started))
    for n in range(JOBS):
        job_id, started = f"mcp-{round_number}-{n}", time.perf_counter()
        await session.call_tool("submit_single_job", {"job_id": job_id, "script_content": "print(1)"})
        result = await session.call_tool("wait_for_jobs", {"job_ids": [job_id], "timeout_s": 30})
        assert result.structured_content["all_completed"], result
        jobs.append(milliseconds_since(started))
    return statistics.median(pings), statistics.median(jobs)


def sdk_round(client, round_number: int) -> tuple:
    pings, jobs = [], []
    for _ in range(PINGS):
        started = time.perf_counter()
        client.ping()
        pings.append(milliseconds_since(started))
    for n in range(JOBS):
        job_id, started = f"sdk-{round_number}-{n}", time.perf_counter()
        client.submit_job(TitanJob(job_id, f"{job_id}.py", content="print(1)"))
        assert client.wait(job_id, timeout=30) == "COMPLETED"
        jobs.append(milliseconds_since(started))
    return statistics.median(pings), statistics.median(jobs)


async def measure(cluster: LocalCluster) -> list:
    environment = {"TITAN_HOST": cluster.host, "TITAN_PORT": str(cluster.port)}
    server = StdioServerParameters(command=sys.executable, args=["-m", "titan.mcp"], env=environment)
    rows = []
    with open(os.devnull, "w") as quiet, cluster.client() as client:
        async with stdio_client(server, errlog=quiet) as (read, write):
            async with ClientSession(read, write) as session:
                await session.initialize()
                await mcp_round(session, -1)   # warm-up, both sides
                sdk_round(client, -1)
                for round_number in range(ROUNDS):
                    rows.append((await mcp_round(session, round_number), sdk_round(client, round_number)))
    return rows


def main() -> int:
    cluster = LocalCluster(workers=[WorkerSpec("w1", slots=2)]).start()
    try:
        rows = anyio.run(measure, cluster)
    finally:
        cluster.stop()
    print(f"{'round':>5}  {'ping MCP ms':>11}  {'ping SDK ms':>11}  {'job MCP ms':>10}  {'job SDK ms':>10}")
    for number, ((mcp_ping, mcp_job), (sdk_ping, sdk_job)) in enumerate(rows):
        print(f"{number:>5}  {mcp_ping:>11.2f}  {sdk_ping:>11.2f}  {mcp_job:>10.1f}  {sdk_job:>10.1f}")
    medians = [statistics.median(row[side][kind] for row in rows) for side, kind in ((0, 0), (1, 0), (0, 1), (1, 1))]
    print(f"{'all':>5}  {medians[0]:>11.2f}  {medians[1]:>11.2f}  {medians[2]:>10.1f}  {medians[3]:>10.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
