"""The MCP server: the original Titan's eleven tools (same names and parameters) and ours beside them,
with typed results, and read-only resources. Built on the official MCP Python SDK (`mcp`, version 2:
MCPServer). Every call goes to the master through one TitanClient, so its keys and limits apply."""

import functools
import json
from typing import Annotated, List, Union

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ResourceNotFoundError, ToolError
from mcp.types import ToolAnnotations
from pydantic import BeforeValidator, Field

from titan import defaults
from titan.core.errors import TitanError, UnknownDag, UnknownJob
from titan.mcp import deployed, operations, schemas
from titan_sdk import TitanClient

INSTRUCTIONS = (
    "Titan runs Python scripts as jobs on a cluster of workers. Submit a script with submit_single_job or "
    "a DAG with submit_dag_pipeline, then wait_for_jobs (it returns as soon as they end) and read "
    "get_job_logs. A job with hitl_message is followed by a gate hitl-gate-<job_id> that holds its children "
    "until approve_hitl_gate. TitanStore (store_get/store_put) is a key-value store shared by all jobs.")
READ_ONLY = ToolAnnotations(read_only_hint=True, destructive_hint=False, open_world_hint=False)
DESTRUCTIVE = ToolAnnotations(read_only_hint=False, destructive_hint=True, open_world_hint=False)
RUNS_CODE = ToolAnnotations(read_only_hint=False, destructive_hint=False, open_world_hint=True)

JobId = Annotated[str, Field(description="the job's id on the master")]
GateId = Annotated[str, Field(description="the gate's id: hitl-gate-<id of the job it follows>")]
AgentRunId = Annotated[str, Field(description="optional: groups the DAGs of one agent run")]
Requirement = Annotated[str, Field(description="capability a worker must offer (GENERAL: any worker)")]
YamlPath = Annotated[str, Field(description="a pipeline file where the server runs (absolute path)")]
JOBS_JSON_HELP = ("a JSON array of jobs, each an object with job_id and script_content (a Python script) or "
                  "script_name (one stored with deploy_script), and optionally args (one string), requirement, "
                  "priority (higher first), parents (job ids that must complete first) and hitl_message (adds "
                  "a gate after the job)")


# Some clients send the array itself rather than its JSON text; anything else goes on as JSON text, for
# jobs_from_json to say what is wrong with it in Titan's words rather than the validator's.
JobsJson = Annotated[Union[str, list], BeforeValidator(lambda v: v if isinstance(v, (str, list)) else json.dumps(v)),
                     Field(description=JOBS_JSON_HELP)]


def reported(tool):
    """Failures as tool errors carrying Titan's own message (the master's, or the input check's)."""
    @functools.wraps(tool)
    def call(*args, **kwargs):
        try:
            return tool(*args, **kwargs)
        except TitanError as exc:
            raise ToolError(exc.message) from exc
        except (ValueError, TypeError, FileNotFoundError, NotImplementedError) as exc:
            raise ToolError(str(exc)) from exc
    return call


def build_server(client: TitanClient) -> MCPServer:
    server = MCPServer("titan", instructions=INSTRUCTIONS, log_level="WARNING")
    for add_tools in (add_submitting_tools, add_job_tools, add_waiting_tools, add_cluster_tools, add_resources):
        add_tools(server, client)
    return server


def registrar(server: MCPServer):
    """A decorator factory: @tool(annotations) registers a function as a tool, failures reported."""
    return lambda annotations: (lambda fn: server.tool(annotations=annotations)(reported(fn)))


def add_submitting_tools(server: MCPServer, client: TitanClient) -> None:
    """The original Titan MCP server's tools, with its names and parameters (those that submit)."""
    tool = registrar(server)

    @tool(READ_ONLY)
    def ping_master() -> schemas.Pong:
        """Check that the Titan master answers; says which master and how fast."""
        return operations.ping_master(client)

    @tool(RUNS_CODE)
    def submit_single_job(job_id: JobId, script_content: Annotated[str, Field(description="the Python script")],
                          args: str = "", requirement: Requirement = defaults.DEFAULT_REQUIREMENT,
                          priority: int = defaults.DEFAULT_PRIORITY) -> schemas.SubmittedJob:
        """Run one Python script on the cluster. Returns at once; warnings name a requirement no connected
        worker offers (the job would wait for one)."""
        return operations.submit_single_job(client, job_id, script_content, args, requirement, priority)

    @tool(RUNS_CODE)
    def submit_dag_pipeline(dag_name: str, jobs_json: JobsJson, agent_run_id: AgentRunId = "") -> schemas.SubmittedDag:
        """Submit a DAG of jobs at once, checked whole first: a bad job, an unknown parent or a cycle is
        an error and nothing is submitted."""
        return operations.submit_dag_pipeline(client, dag_name, jobs_json, agent_run_id)

    @tool(RUNS_CODE)
    def submit_yaml_pipeline(yaml_path: YamlPath,
                             agent_run_id: AgentRunId = "") -> schemas.SubmittedDag:
        """Submit a Titan YAML pipeline file as one DAG."""
        return operations.submit_yaml_pipeline(client, yaml_path, agent_run_id)

    @tool(ToolAnnotations(destructive_hint=True, idempotent_hint=True, open_world_hint=False))
    def deploy_script(script_name: Annotated[str, Field(description="the name jobs run it by, e.g. etl.py")],
                      script_content: str) -> schemas.DeployedScript:
        """Store a script on the master by name; jobs then run it with script_name in submit_dag_pipeline."""
        return deployed.deploy(client, script_name, script_content)


def add_job_tools(server: MCPServer, client: TitanClient) -> None:
    """The rest of the original's tools: a job's state and logs, gates, TitanStore."""
    tool = registrar(server)

    @tool(READ_ONLY)
    def get_job_status(job_id: JobId) -> schemas.JobInfo:
        """A job's state (PENDING, QUEUED, RUNNING, WAITING_APPROVAL, COMPLETED, FAILED, CANCELLED) and why."""
        return client.job_info(job_id)

    @tool(READ_ONLY)
    def get_job_logs(job_id: JobId) -> schemas.JobLogs:
        """A job's output so far (stdout and stderr, in order)."""
        return operations.job_logs(client, job_id)

    @tool(RUNS_CODE)
    def approve_hitl_gate(gate_id: GateId) -> schemas.GateDecision:
        """Approve a human-in-the-loop gate: the jobs after it may run."""
        return operations.gate_decision(gate_id, client.approve(gate_id))

    @tool(DESTRUCTIVE)
    def reject_hitl_gate(gate_id: GateId, reason: str = "") -> schemas.GateDecision:
        """Reject a gate: the jobs after it are cancelled."""
        return operations.gate_decision(gate_id, client.reject(gate_id, reason))

    @tool(READ_ONLY)
    def store_get(key: str) -> schemas.StoreValue:
        """Read a TitanStore key (found is false when it has no value)."""
        return operations.store_get(client, key)

    @tool(ToolAnnotations(destructive_hint=True, idempotent_hint=True, open_world_hint=False))
    def store_put(key: str, value: str) -> schemas.StorePut:
        """Set a TitanStore key to a string value."""
        return operations.store_put(client, key, value)


def add_waiting_tools(server: MCPServer, client: TitanClient) -> None:
    """Ours: waiting on the event stream, cancelling, logs piece by piece."""
    tool = registrar(server)

    @tool(READ_ONLY)
    def wait_for_jobs(job_ids: Annotated[List[str], Field(description="the jobs to wait for")],
                      timeout_s: Annotated[float, Field(description=f"at most {defaults.MCP_MAX_WAIT_S:g}")]
                      = defaults.MCP_DEFAULT_WAIT_S) -> schemas.WaitResult:
        """Wait until the jobs end (returns the moment the last one does) or timeout_s passes; says how
        each ended and which are still going."""
        return operations.wait_for_jobs(client, job_ids, timeout_s)

    @tool(DESTRUCTIVE)
    def cancel_job(job_id: JobId) -> schemas.CancelledJob:
        """Cancel a waiting or running job, and the jobs that depend on it."""
        return operations.cancelled(job_id, client.cancel(job_id))

    @tool(DESTRUCTIVE)
    def cancel_dag(dag_name: str) -> schemas.DagStatus:
        """Cancel every job of a DAG that has not ended yet."""
        client.cancel_dag(dag_name)
        return operations.dag_status(client, dag_name)

    @tool(READ_ONLY)
    def tail_job_logs(job_id: JobId, since: Annotated[int, Field(description="0, then the offset returned")] = 0
                      ) -> schemas.LogTail:
        """A job's output after `since` characters; call again with the returned offset for more."""
        return operations.tail_job_logs(client, job_id, since)


def add_cluster_tools(server: MCPServer, client: TitanClient) -> None:
    """Ours: listing jobs, the cluster at a glance, one DAG."""
    tool = registrar(server)

    @tool(READ_ONLY)
    def list_jobs(state: Annotated[str, Field(description="only jobs in this state; empty: all")] = "",
                  dag: Annotated[str, Field(description="only this DAG's jobs; empty: all")] = "",
                  limit: Annotated[int, Field(description="jobs per page, 1 to 1000")] = defaults.MCP_DEFAULT_LISTED_JOBS,
                  cursor: Annotated[str, Field(description="next_cursor of the page before; empty: the newest")] = ""
                  ) -> schemas.JobList:
        """Jobs the master keeps (earlier runs of re-submitted jobs too), newest first, with their times."""
        return operations.list_jobs(client, state, dag, limit, cursor)

    @tool(READ_ONLY)
    def cluster_status() -> schemas.ClusterStatus:
        """Workers (capabilities, slots, load, last heartbeat), queues by capability, job counts."""
        return operations.cluster_status(client)

    @tool(READ_ONLY)
    def dag_status(dag_name: str) -> schemas.DagStatus:
        """A DAG's jobs and their states, with counts by state."""
        return operations.dag_status(client, dag_name)


def add_resources(server: MCPServer, client: TitanClient) -> None:
    @server.resource("titan://jobs/{job_id}/logs", mime_type="text/plain", description="a job's output so far")
    def job_logs(job_id: str) -> str:
        return read(lambda: client.fetch_logs(job_id))

    @server.resource("titan://dags/{dag_name}", mime_type="application/json", description="a DAG's status")
    def dag(dag_name: str) -> str:
        return read(lambda: json.dumps(operations.dag_status(client, dag_name)))

    @server.resource("titan://cluster/workers", mime_type="application/json",
                     description="the connected workers: capabilities, slots, load, running jobs")
    def workers() -> str:
        return read(lambda: json.dumps(operations.cluster_status(client)["workers"]))


def read(produce) -> str:
    try:
        return produce()
    except (UnknownJob, UnknownDag) as exc:
        raise ResourceNotFoundError(exc.message) from exc
    except TitanError as exc:
        raise ResourceError(exc.message) from exc
