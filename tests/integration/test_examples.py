"""Every example, run as a plain script against a real cluster, then checked through the cluster itself."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys

import pytest

from titan.cluster import WorkerSpec

EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "..", "examples")


@pytest.fixture
def seed_cluster(make_cluster):
    return make_cluster(WorkerSpec("cpu-1", slots=3), WorkerSpec("gpu-1", ["GPU"], slots=2),
                        WorkerSpec("himem-1", ["HIGH_MEMORY"], slots=1))


def run_example(cluster, relative_path: str, *args: str, **env) -> subprocess.CompletedProcess:
    path = os.path.abspath(os.path.join(EXAMPLES, relative_path))
    environment = {**os.environ, "TITAN_HOST": cluster.host, "TITAN_PORT": str(cluster.port), **env}
    result = subprocess.run([sys.executable, path, *args], cwd=os.path.dirname(path), env=environment,
                            capture_output=True, text=True, timeout=90)
    assert result.returncode == 0, f"{relative_path} failed:\n{result.stdout}\n{result.stderr}"
    return result


def test_static_dag_routes_training_to_the_gpu_worker(seed_cluster):
    run_example(seed_cluster, "static_dag/submit.py")
    with seed_cluster.client() as client:
        extract, train = client.job_info("extract_data"), client.job_info("train_model")
        assert (extract["state"], train["state"]) == ("COMPLETED", "COMPLETED")
        assert train["worker"] == "gpu-1"
        assert extract["worker"] != "gpu-1", "a GENERAL job took the GPU worker while plain ones were free"
        assert "trained on 100 rows on gpu-1" in client.fetch_logs("train_model")


@pytest.mark.parametrize("traffic, expected_jobs", [
    (95, ["fast_scan"]),
    (20, [f"deep_{i}" for i in range(10)]),
])
def test_dynamic_pipeline_chooses_its_graph(seed_cluster, traffic, expected_jobs):
    result = run_example(seed_cluster, "dynamic_fanout/submit.py", TRAFFIC=str(traffic))
    with seed_cluster.client() as client:
        assert client.wait(expected_jobs, timeout=30) == {job: "COMPLETED" for job in expected_jobs}
        if traffic > 80:
            assert "[HIGH]" in result.stdout
            assert client.store_smembers("deep/shards_done") == []
        else:
            assert "[LOW]" in result.stdout
            assert client.store_smembers("deep/shards_done") == sorted(expected_jobs)
            workers = {client.job_info(job)["worker"] for job in expected_jobs}
            assert len(workers) >= 2, f"ten parallel jobs all ran on {workers}"


@pytest.mark.parametrize("failure, root_cause, requirement, worker", [
    ("ram", "the run ran out of memory", "HIGH_MEMORY", "himem-1"),
    ("cuda", "the GPU ran out of memory", "GENERAL", "cpu-1"),
])
def test_self_healing_agent_submits_a_fix_with_another_requirement(seed_cluster, failure, root_cause,
                                                                   requirement, worker):
    result = run_example(seed_cluster, "self_healing/run.py", FAILURE=failure)
    assert "flaky_training_run: FAILED" in result.stdout
    assert f"Root cause: {root_cause}" in result.stdout and "decided by rules" in result.stdout
    with seed_cluster.client() as client:
        fix = client.job_info("flaky_training_run_fix")
        assert (fix["state"], fix["requirement"], fix["worker"]) == ("COMPLETED", requirement, worker)


def test_self_healing_agent_escalates_what_no_rerun_can_fix(seed_cluster):
    result = run_example(seed_cluster, "self_healing/run.py", FAILURE="module")
    assert "Escalating to a person: module 'flash_attn' is not installed" in result.stdout
    assert "no fix job was submitted" in result.stdout


def test_self_healing_agent_asks_a_configured_llm(seed_cluster, tmp_path):
    """A stand-in model: a command that reads the prompt on stdin and answers like a chat model would."""
    model = tmp_path / "model.py"
    model.write_text("import sys\nprompt = sys.stdin.read()\n"
                     "gpu = 'CUDA out of memory' in prompt\n"
                     "print('Sure. {\"action\": \"RERUN\", \"reason\": \"model says: ' + "
                     "('GPU' if gpu else 'RAM') + ' exhausted\", \"requirement\": \"HIGH_MEMORY\"}')\n")
    result = run_example(seed_cluster, "self_healing/run.py", FAILURE="cuda",
                         TITAN_LLM_COMMAND=f"{sys.executable} {model}")
    assert "decided by llm" in result.stdout and "Root cause: model says: GPU exhausted" in result.stdout
    with seed_cluster.client() as client:
        assert client.job_info("flaky_training_run_fix")["worker"] == "himem-1"


def test_recursive_agent_keeps_memory_in_titanstore(seed_cluster):
    result = run_example(seed_cluster, "recursive_agent/submit.py")
    with seed_cluster.client() as client:
        chain = ["autonomous_agent"] + [f"agent_retry_{i}" for i in range(1, 4)]
        ran = [job for job in chain if _exists(client, job)]
        assert ran == chain[:len(ran)], "clones must follow one another in order"
        states = [client.get_job_status(job) for job in ran]
        logs = [client.fetch_logs(job) for job in ran]
        for attempt, text in enumerate(logs, start=1):
            assert f"(Attempt {attempt} of 3)" in text, "each clone must see the count its parent stored"
        if "[SUCCESS]" in logs[-1]:
            assert states[-1] == "COMPLETED"
        else:
            assert "[ESCALATION]" in logs[-1] and len(ran) == 4 and states[-1] == "FAILED"
        assert all(state == "COMPLETED" for state in states[:-1])
        assert client.store_get("agent_retry_count") == "0"
    assert f"the agent ran {len(ran)} time(s)" in result.stdout


def _exists(client, job_id: str) -> bool:
    return client.get_job_status(job_id) != "NULL"


def test_code_healer_loops_until_the_tests_pass(seed_cluster, tmp_path):
    original = open(os.path.join(EXAMPLES, "code_healer", "project", "stats.py")).read()
    result = run_example(seed_cluster, "code_healer/submit.py", str(tmp_path))
    assert "tests pass after 4 round(s)" in result.stdout, result.stdout
    healed = (tmp_path / "stats.py").read_text()
    assert healed != original and "reslt" not in healed and ".apend(" not in healed
    assert "if len(values) else 0.0" in healed
    shutil.copy(os.path.join(EXAMPLES, "code_healer", "project", "test_stats.py"), tmp_path)
    check = "import test_stats as t; [getattr(t, n)() for n in dir(t) if n.startswith('test_')]; print('ok')"
    ran = subprocess.run([sys.executable, "-c", check], cwd=tmp_path, capture_output=True, text=True, timeout=30)
    assert ran.stdout.strip() == "ok", ran.stderr
    with seed_cluster.client() as client:
        states = [client.get_job_status(f"code_healer_tests_{n}") for n in range(1, 5)]
        assert states == ["FAILED", "FAILED", "FAILED", "COMPLETED"]
        assert len(client.store_smembers("code_healer/patches")) == 3
        assert "decided by rules: PATCH" in client.fetch_logs("code_healer_fix_1")


def test_doc_dispatcher_documents_every_function_of_every_file(seed_cluster, tmp_path):
    sources = os.path.join(EXAMPLES, "doc_dispatcher", "sample_src")
    output = tmp_path / "DOCS.md"
    result = run_example(seed_cluster, "doc_dispatcher/dispatcher.py", sources, str(output))
    assert "2 of 2 files documented" in result.stdout
    docs = output.read_text()
    for name in ("geometry.py", "inventory.py"):
        tree = ast.parse(open(os.path.join(sources, name)).read())
        assert f"## `{name}`" in docs and ast.get_docstring(tree) in docs
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                assert f"{node.name}(" in docs, f"{name}: function {node.name} is not documented"
            if isinstance(node, ast.ClassDef):
                assert f"class {node.name}" in docs, f"{name}: class {node.name} is not documented"
    assert "### `def circle_area(radius: float) -> float`" in docs
    assert "`async def restock(item: Item, amount: int, *, supplier: str='default') -> Item`" in docs
    assert "#### `def Rectangle.area(self) -> float`\n\nWidth times height." in docs
    with seed_cluster.client() as client:
        dag = client.dag_status("doc_dispatcher")
        assert [job["state"] for job in dag["jobs"]] == ["COMPLETED", "COMPLETED"]


def test_service_pipeline_calls_the_service_and_stops_it(seed_cluster):
    result = run_example(seed_cluster, "service_pipeline/submit.py")
    assert "predict(1) = 3\npredict(2) = 5\npredict(3) = 7" in result.stdout
    assert "up: True" in result.stdout and "after stop_service: COMPLETED" in result.stdout
    with seed_cluster.client() as client:
        server = client.job_info("model_server")
        assert (server["state"], server["reason"]) == ("COMPLETED", "stopped by request")
        assert "served" in client.fetch_logs("model_server")
        assert all(worker["services"] == [] for worker in client.stats()["workers"])
