"""`titan mcp` as an AI client meets it: a real subprocess, spoken to through the MCP SDK's own client over
stdio and streamable HTTP, in front of a real local cluster."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import anyio
import pytest

from tests.conftest import TITAN, finish, start_process, stop
from tests.integration.mcp_session import (call, call_error, free_loopback_port, http_session, httpx2,
                                           master_environment, stdio_session, wait_for_port)
from titan import cli
from titan.cluster import WorkerSpec, free_port_block

ORIGINAL_TOOLS = {"ping_master", "submit_single_job", "submit_dag_pipeline", "submit_yaml_pipeline", "get_job_status",
                  "get_job_logs", "approve_hitl_gate", "reject_hitl_gate", "store_get", "store_put", "deploy_script"}
OUR_TOOLS = {"wait_for_jobs", "cancel_job", "cancel_dag", "tail_job_logs", "list_jobs", "cluster_status", "dag_status"}
SCENARIO_TIMEOUT_S = 50


def run(scenario) -> None:
    async def bounded():
        with anyio.fail_after(SCENARIO_TIMEOUT_S):
            await scenario()
    anyio.run(bounded)


@pytest.fixture
def errlog(tmp_path):
    with open(tmp_path / "titan-mcp.stderr", "w+") as log:
        yield log


def test_tools_are_listed_with_the_originals_parameters_and_typed_results(cluster, errlog):
    async def scenario():
        async with stdio_session(master_environment(cluster), errlog) as session:
            tools = {tool.name: tool for tool in (await session.list_tools()).tools}
            assert set(tools) == ORIGINAL_TOOLS | OUR_TOOLS
            single = tools["submit_single_job"].input_schema
            assert list(single["properties"]) == ["job_id", "script_content", "args", "requirement", "priority"]
            assert sorted(single["required"]) == ["job_id", "script_content"]
            assert [single["properties"][name]["default"] for name in ("args", "requirement", "priority")] == \
                ["", "GENERAL", 1]
            dag = tools["submit_dag_pipeline"].input_schema
            assert list(dag["properties"]) == ["dag_name", "jobs_json", "agent_run_id"]
            assert list(tools["deploy_script"].input_schema["properties"]) == ["script_name", "script_content"]
            for tool in tools.values():
                assert tool.output_schema and tool.output_schema["type"] == "object", tool.name
            assert set(tools["wait_for_jobs"].output_schema["required"]) >= {"finished", "pending", "timed_out"}
            assert tools["get_job_status"].annotations.read_only_hint is True
            templates = {t.uri_template for t in (await session.list_resource_templates()).resource_templates}
            assert templates == {"titan://jobs/{job_id}/logs", "titan://dags/{dag_name}"}
            assert [str(r.uri) for r in (await session.list_resources()).resources] == ["titan://cluster/workers"]
    run(scenario)


def test_a_single_job_runs_and_its_logs_and_the_store_are_read(cluster, errlog):
    script = "import sys\nprint('hello from', sys.argv[1:])\n"

    async def scenario():
        async with stdio_session(master_environment(cluster), errlog) as session:
            assert (await call(session, "ping_master"))["ok"] is True
            submitted = await call(session, "submit_single_job", job_id="hello", script_content=script, args="a b")
            assert submitted["job_id"] == "hello" and submitted["warnings"] == []
            waited = await call(session, "wait_for_jobs", job_ids=["hello"], timeout_s=30)
            assert waited == {"finished": {"hello": "COMPLETED"}, "pending": {}, "timed_out": False,
                              "all_completed": True}
            assert (await call(session, "get_job_status", job_id="hello"))["state"] == "COMPLETED"
            logs = await call(session, "get_job_logs", job_id="hello")
            assert logs["logs"] == "hello from ['a', 'b']\n"
            tail = await call(session, "tail_job_logs", job_id="hello", since=6)
            assert (tail["text"], tail["offset"], tail["finished"]) == ("from ['a', 'b']\n", 22, True)
            resource = await session.read_resource("titan://jobs/hello/logs")
            assert resource.contents[0].text == "hello from ['a', 'b']\n"
            assert (await call(session, "store_put", key="model", value="v2")) == {"key": "model", "stored": True}
            assert (await call(session, "store_get", key="model")) == {"key": "model", "value": "v2", "found": True}
            assert (await call(session, "store_get", key="nothing"))["found"] is False
            assert "no job 'ghost'" in await call_error(session, "get_job_logs", job_id="ghost")
    run(scenario)


def test_a_requirement_no_worker_offers_is_reported_and_the_job_can_be_cancelled(cluster, errlog):
    async def scenario():
        async with stdio_session(master_environment(cluster), errlog) as session:
            status = await call(session, "cluster_status")
            assert status["capabilities"] == ["GENERAL", "GPU"] and len(status["workers"]) == 2
            submitted = await call(session, "submit_single_job", job_id="tpu", script_content="print(1)",
                                   requirement="TPU")
            assert submitted["state"] == "QUEUED"
            [warning] = submitted["warnings"]
            assert "no connected worker offers capability TPU" in warning and "GENERAL, GPU" in warning
            lower = await call(session, "submit_single_job", job_id="gpu", script_content="print(1)", requirement="gpu")
            assert "did you mean GPU?" in lower["warnings"][0]
            assert (await call(session, "cancel_job", job_id="tpu")) == {"job_id": "tpu", "state": "CANCELLED"}
            assert (await call(session, "cancel_job", job_id="gpu"))["state"] == "CANCELLED"
            waited = await call(session, "wait_for_jobs", job_ids=["tpu", "gpu"], timeout_s=5)
            assert waited["finished"] == {"tpu": "CANCELLED", "gpu": "CANCELLED"} and not waited["all_completed"]
    run(scenario)


def gated_dag(name: str) -> str:
    return json.dumps([
        {"job_id": f"{name}-prepare", "script_content": "print('prepared')", "hitl_message": "Train on this?"},
        {"job_id": f"{name}-train", "parents": [f"{name}-prepare"],
         "script_content": "from titan_sdk import TitanClient\nTitanClient().store_put('accuracy', '0.93')\n"},
        {"job_id": f"{name}-report", "parents": [f"{name}-train"], "priority": 5,
         "script_content": "from titan_sdk import TitanClient\nprint('accuracy', TitanClient().store_get('accuracy'))"},
    ])


def test_a_dag_with_a_gate_runs_once_approved_and_another_is_cancelled(cluster, errlog):
    async def scenario():
        async with stdio_session(master_environment(cluster), errlog) as session:
            submitted = await call(session, "submit_dag_pipeline", dag_name="ml", jobs_json=gated_dag("ml"))
            assert submitted["job_ids"] == ["ml-prepare", "ml-train", "ml-report"]
            assert submitted["gates"] == ["hitl-gate-ml-prepare"]
            held = await call(session, "wait_for_jobs", job_ids=["ml-prepare", "ml-report"], timeout_s=2)
            assert held["finished"] == {"ml-prepare": "COMPLETED"} and held["timed_out"]
            assert held["pending"] == {"ml-report": "PENDING"}
            gate = await call(session, "get_job_status", job_id="hitl-gate-ml-prepare")
            assert gate["state"] == "WAITING_APPROVAL"
            assert (await call(session, "approve_hitl_gate", gate_id="hitl-gate-ml-prepare"))["state"] == "COMPLETED"
            done = await call(session, "wait_for_jobs", job_ids=["ml-train", "ml-report"], timeout_s=30)
            assert done["all_completed"], done
            assert (await call(session, "get_job_logs", job_id="ml-report"))["logs"] == "accuracy 0.93\n"
            status = await call(session, "dag_status", dag_name="ml")
            assert status["finished"] and status["counts"] == {"COMPLETED": 4}
            listed = await call(session, "list_jobs", dag="ml", state="completed")
            assert sorted(job["job_id"] for job in listed["jobs"]) == sorted(submitted["job_ids"] + submitted["gates"])
            dag = json.loads((await session.read_resource("titan://dags/ml")).contents[0].text)
            assert dag["counts"] == {"COMPLETED": 4}

            await call(session, "submit_dag_pipeline", dag_name="later", jobs_json=gated_dag("later"))
            await call(session, "wait_for_jobs", job_ids=["later-prepare"], timeout_s=30)
            cancelled = await call(session, "cancel_dag", dag_name="later")
            assert cancelled["finished"] and cancelled["counts"] == {"COMPLETED": 1, "CANCELLED": 3}
            assert {job["job_id"] for job in (await call(session, "list_jobs", state="CANCELLED"))["jobs"]} == \
                {"hitl-gate-later-prepare", "later-train", "later-report"}
            first = await call(session, "list_jobs", limit=2)   # every job, DAG or not, newest first, in pages
            assert len(first["jobs"]) == 2 and first["next_cursor"]
            rest = await call(session, "list_jobs", limit=100, cursor=first["next_cursor"])
            listed = first["jobs"] + rest["jobs"]
            assert rest["next_cursor"] is None and {job["job_id"] for job in listed} == {
                f"{dag}-{step}" for dag in ("ml", "later") for step in ("prepare", "train", "report")} | {
                "hitl-gate-ml-prepare", "hitl-gate-later-prepare"}
            submitted_at = [job["submitted_at"] for job in listed]
            assert None not in submitted_at and submitted_at == sorted(submitted_at, reverse=True)
    run(scenario)


def test_a_rejected_gate_cancels_what_follows(cluster, errlog):
    async def scenario():
        async with stdio_session(master_environment(cluster), errlog) as session:
            await call(session, "submit_dag_pipeline", dag_name="risky", jobs_json=gated_dag("risky"),
                       agent_run_id="run-1")
            await call(session, "wait_for_jobs", job_ids=["risky-prepare"], timeout_s=30)
            rejected = await call(session, "reject_hitl_gate", gate_id="hitl-gate-risky-prepare", reason="too risky")
            assert rejected["state"] == "CANCELLED"
            gate = await call(session, "get_job_status", job_id="hitl-gate-risky-prepare")
            assert "too risky" in gate["reason"]
            ended = await call(session, "wait_for_jobs", job_ids=["risky-train", "risky-report"], timeout_s=10)
            assert ended["finished"] == {"risky-train": "CANCELLED", "risky-report": "CANCELLED"}
    run(scenario)


def test_with_keys_the_server_acts_with_its_key_and_without_them_gets_no_answer(make_cluster, tmp_path, errlog):
    key_dir = str(tmp_path / "keys")
    assert cli.main(["keys", "init", key_dir]) == 0
    cluster = make_cluster(WorkerSpec("w1"), keys=key_dir)
    job = "from titan_sdk import TitanClient\nTitanClient().store_put('from-job', 'signed')\n"

    async def scenario():
        async with stdio_session({**master_environment(cluster), "TITAN_KEYS": key_dir}, errlog) as session:
            await call(session, "submit_single_job", job_id="keyed", script_content=job)
            assert (await call(session, "wait_for_jobs", job_ids=["keyed"], timeout_s=30))["all_completed"]
            assert (await call(session, "store_get", key="from-job"))["value"] == "signed"
        async with stdio_session(master_environment(cluster), errlog, "--timeout", "2") as session:
            assert "check TITAN_KEYS" in await call_error(session, "ping_master")
    run(scenario)


def test_a_yaml_pipeline_is_submitted_from_the_servers_machine(cluster, tmp_path, errlog):
    (tmp_path / "hello.py").write_text("import sys\nprint('step', sys.argv[1])\n")
    (tmp_path / "flow.yaml").write_text("name: flow\njobs:\n  - id: one\n    file: hello.py\n    args: one\n"
                                        "  - id: two\n    file: hello.py\n    args: two\n    depends_on: [one]\n")

    async def scenario():
        async with stdio_session(master_environment(cluster), errlog) as session:
            submitted = await call(session, "submit_yaml_pipeline", yaml_path=str(tmp_path / "flow.yaml"))
            assert (submitted["dag"], submitted["job_ids"], submitted["gates"]) == ("flow", ["one", "two"], [])
            assert (await call(session, "wait_for_jobs", job_ids=["one", "two"], timeout_s=30))["all_completed"]
            assert (await call(session, "get_job_logs", job_id="two"))["logs"] == "step two\n"
            workers = json.loads((await session.read_resource("titan://cluster/workers")).contents[0].text)
            assert sorted(worker["name"] for worker in workers) == ["cpu-1", "gpu-1"]
            missing = await call_error(session, "submit_yaml_pipeline", yaml_path=str(tmp_path / "nope.yaml"))
            assert "pipeline file" in missing and "nope.yaml" in missing and "not found" in missing
    run(scenario)


BAD_JOBS_JSON = [
    ("[{\"job_id\": \"a\", \"script_content\": ", "jobs_json is not valid JSON"),
    (json.dumps([{"job_id": "a", "script_content": "print(1)", "parents": ["b"]},
                 {"job_id": "b", "script_content": "print(2)", "parents": ["a"]}]), "cycle"),
    (json.dumps([{"job_id": "a", "script_content": "print(1)", "parents": ["nowhere"]}]), "nowhere"),
    (json.dumps([{"job_id": "a", "script_content": "print(1)"}, {"script_content": "print(2)"}]),
     "jobs_json[1] has no job_id"),
    (json.dumps([{"job_id": "a", "script": "print(1)"}]), "unknown field(s) script"),
    (json.dumps({"job_id": "a", "script_content": "print(1)"}), "must be a non-empty JSON array"),
    (json.dumps([{"job_id": "a", "script_content": "print(1)", "priority": "high"}]), "priority must be an integer"),
]


def test_a_bad_jobs_json_is_a_clear_tool_error_and_submits_nothing(cluster, errlog):
    async def scenario():
        async with stdio_session(master_environment(cluster), errlog) as session:
            for jobs_json, expected in BAD_JOBS_JSON:
                message = await call_error(session, "submit_dag_pipeline", dag_name="bad", jobs_json=jobs_json)
                assert expected in message, (jobs_json, message)
            assert "no DAG 'bad'" in await call_error(session, "dag_status", dag_name="bad")
            counts = (await call(session, "cluster_status"))["jobs_by_state"]
            assert sum(counts.values()) == 0, counts
    run(scenario)


def test_a_master_that_is_down_is_a_clear_error_within_seconds(tmp_path, errlog):
    nobody = {"TITAN_HOST": "127.0.0.1", "TITAN_PORT": str(free_port_block("127.0.0.1", 4))}

    async def scenario():
        async with stdio_session(nobody, errlog) as session:
            for tool, arguments in (("ping_master", {}), ("wait_for_jobs", {"job_ids": ["x"], "timeout_s": 30})):
                started = time.monotonic()
                message = await call_error(session, tool, **arguments)
                assert time.monotonic() - started < 10, f"{tool} took {time.monotonic() - started:.1f}s to fail"
                assert f"Titan master at tcp://127.0.0.1:{nobody['TITAN_PORT']}" in message or \
                    "event stream" in message, message
                assert "is it running?" in message or "is the master running?" in message
    run(scenario)


def test_streamable_http_serves_the_same_tools_to_a_client_with_the_token(cluster, tmp_path):
    port, token = free_loopback_port(), "s3cret-token"
    environment = {**master_environment(cluster), "TITAN_MCP_TOKEN": token, "PATH": os.environ["PATH"]}
    server = start_process([TITAN, "mcp", "--http", f"127.0.0.1:{port}"], env=environment)
    url = f"http://127.0.0.1:{port}/mcp"
    try:
        wait_for_port(port, server)

        async def scenario():
            async with http_session(url, token) as session:
                assert {tool.name for tool in (await session.list_tools()).tools} == ORIGINAL_TOOLS | OUR_TOOLS
                await call(session, "submit_single_job", job_id="over-http", script_content="print('via http')")
                waited = await call(session, "wait_for_jobs", job_ids=["over-http"], timeout_s=30)
                assert waited["all_completed"]
                assert (await call(session, "get_job_logs", job_id="over-http"))["logs"] == "via http\n"
            async with httpx2.AsyncClient(timeout=10) as http:
                for headers in ({}, {"Authorization": "Bearer wrong"}):
                    refused = await http.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "ping"}, headers=headers)
                    assert refused.status_code == 401 and "Authorization: Bearer" in refused.text
        run(scenario)
    finally:
        _, stderr = stop(server, signal.SIGTERM)
    assert f"serving MCP (streamable HTTP, a bearer token) at {url}" in stderr


@pytest.mark.parametrize("more", [[], ["--keys", "/nonexistent/bundle"]], ids=["no keys", "keys but no token"])
def test_http_beyond_loopback_without_keys_and_token_is_refused_like_the_master(more):
    process = start_process([TITAN, "mcp", "--http", f"0.0.0.0:{free_loopback_port()}", *more])
    _, stderr = finish(process, timeout=20)
    assert process.returncode == 2
    assert stderr.startswith("titan mcp: refusing to serve MCP over HTTP on 0.0.0.0 without keys and a token")
    assert "--keys" in stderr and "--token-file" in stderr and "--insecure" in stderr


def test_without_the_mcp_extra_one_line_names_it():
    # `import mcp` fails in this interpreter as it does where the SDK is not installed
    without_sdk = "import sys; sys.modules['mcp'] = None; from titan.cli import main; sys.exit(main(['mcp']))"
    result = subprocess.run([sys.executable, "-c", without_sdk], capture_output=True, text=True, timeout=30,
                            stdin=subprocess.DEVNULL)
    assert result.returncode == 2
    assert result.stderr == "titan mcp: needs the MCP SDK, which is not installed: pip install 'titan-scheduler[mcp]'\n"


def test_a_deployed_script_runs_by_name(cluster, errlog):
    async def scenario():
        async with stdio_session(master_environment(cluster), errlog) as session:
            deployed_script = await call(session, "deploy_script", script_name="greet.py",
                                         script_content="print('deployed hello')")
            assert deployed_script["script_name"] == "greet.py"
            jobs = json.dumps([{"job_id": "greet", "script_name": "greet.py"}])
            await call(session, "submit_dag_pipeline", dag_name="by-name", jobs_json=jobs)
            assert (await call(session, "wait_for_jobs", job_ids=["greet"], timeout_s=30))["all_completed"]
            assert (await call(session, "get_job_logs", job_id="greet"))["logs"] == "deployed hello\n"
    run(scenario)


def test_python_dash_m_titan_mcp_is_the_same_command():
    result = subprocess.run([sys.executable, "-m", "titan.mcp", "--help"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0 and "--http HOST:PORT" in result.stdout


def test_the_example_agent_loop_fans_out_and_checks_its_results(cluster):
    example = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "mcp", "agent_loop.py")
    result = subprocess.run([sys.executable, os.path.abspath(example)], capture_output=True, text=True, timeout=50,
                            env={**os.environ, **master_environment(cluster)}, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    assert "fanning out to 4 jobs" in result.stdout   # 2 workers x 2 free slots
    assert "agent: checked: 75 words" in result.stdout
