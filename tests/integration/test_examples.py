"""Every example run exactly as its README says: the cluster its README starts (`titan up` with the flags
shown, on a free port instead of 9090), then each command it shows, through a shell, from the repository's
root; then checked through the cluster itself."""

from __future__ import annotations

import ast
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import List

import pytest

from titan.cluster import free_port_block
from titan_sdk import TitanClient

from tests.conftest import TITAN, finish, start_process, stop

EXAMPLES = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "examples"))
ANOTHER_TERMINAL = "# from another terminal"


def readme_steps(example: str) -> tuple:
    """(the `titan up` flags, the commands) of the example README's "Run it" section."""
    with open(os.path.join(EXAMPLES, example, "README.md")) as readme:
        section = readme.read().split("## Run it", 1)[1]
    lines = [line[4:] for line in section.splitlines() if line.startswith("    ")]
    assert lines and lines[0].startswith("titan up"), f"{example}/README.md must start its cluster with titan up"
    return shlex.split(lines[0])[2:], lines[1:]


@dataclass
class ReadmeRun:
    port: int
    outputs: List[str]   # each command's stdout, in the README's order

    def client(self) -> TitanClient:
        return TitanClient(host="127.0.0.1", port=self.port, timeout=15)


@pytest.fixture
def as_readme_says(tmp_path):
    """as_readme_says("static_dag", **env): the example run as its README says; the cluster stops at the end.
    The commands run from a folder that holds the repository's examples/, so what they write stays there."""
    started = []
    (tmp_path / "examples").symlink_to(EXAMPLES)

    def run(example: str, **env) -> ReadmeRun:
        up_flags, commands = readme_steps(example)
        port = free_port_block("127.0.0.1", 4)
        environment = {**{k: v for k, v in os.environ.items() if not k.startswith("TITAN_")},
                       "PATH": os.path.dirname(TITAN) + os.pathsep + os.environ["PATH"], "TITAN_PORT": str(port),
                       **env}
        up = start_process([TITAN, "up", *up_flags, "--port", str(port)], env=environment)
        started.append(up)
        assert "Ctrl-C stops" in "".join(iter_lines_until(up, "Ctrl-C stops")), "titan up did not start"
        return ReadmeRun(port, run_commands(commands, environment, str(tmp_path)))

    yield run
    for up in started:
        out, err = stop(up, signal.SIGINT, timeout=20)
        assert up.returncode == 0 and "Traceback" not in err, err


def iter_lines_until(process, marker: str):
    for line in iter(process.stdout.readline, ""):
        yield line
        if marker in line:
            return


def run_commands(commands: List[str], env: dict, cwd: str) -> List[str]:
    """Each command through bash, in order; one marked as typed in another terminal runs (retried until it
    succeeds, as a person would once the moment comes) while the command before it is still running."""
    outputs = []
    for index, command in enumerate(commands):
        if ANOTHER_TERMINAL in command:
            continue
        process = start_process(["bash", "-c", command], env=env, cwd=cwd)
        for other in commands[index + 1:]:
            if ANOTHER_TERMINAL not in other:
                break
            retry_until_it_succeeds(other.split(ANOTHER_TERMINAL)[0], env, cwd)
        out, err = finish(process, timeout=120)
        assert process.returncode == 0, f"{command!r} failed ({process.returncode}):\n{out}\n{err}"
        outputs.append(out)
    return outputs


def retry_until_it_succeeds(command: str, env: dict, cwd: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        result = subprocess.run(["bash", "-c", command], env=env, cwd=cwd, capture_output=True, text=True,
                                timeout=30, stdin=subprocess.DEVNULL)
        if result.returncode == 0:
            return
        assert time.monotonic() < deadline, f"{command!r} kept failing: {result.stderr}"
        time.sleep(0.2)


def test_every_example_has_a_readme_that_says_how_to_run_it():
    examples = sorted(name for name in os.listdir(EXAMPLES) if os.path.isdir(os.path.join(EXAMPLES, name)))
    tested = {name for name in examples if f"as_readme_says(\"{name}\"" in open(__file__).read()}
    for name in examples:
        up_flags, commands = readme_steps(name)
        assert commands, f"{name}/README.md shows no command to run"
    assert tested == set(examples), f"examples no test runs as their README says: {set(examples) - tested}"


def test_static_dag_routes_training_to_the_gpu_worker(as_readme_says):
    with as_readme_says("static_dag").client() as client:
        extract, train = client.job_info("extract_data"), client.job_info("train_model")
        assert (extract["state"], train["state"]) == ("COMPLETED", "COMPLETED")
        assert train["worker"] == "gpu-1"
        assert extract["worker"] != "gpu-1", "a GENERAL job took the GPU worker while plain ones were free"
        assert "trained on 100 rows on gpu-1" in client.fetch_logs("train_model")


def test_dynamic_pipeline_chooses_its_graph(as_readme_says):
    run = as_readme_says("dynamic_fanout")
    high, low = run.outputs
    deep = [f"deep_{i}" for i in range(10)]
    assert "[HIGH]" in high and "[LOW]" in low
    with run.client() as client:
        assert client.get_job_status("fast_scan") == "COMPLETED"
        assert client.wait(deep, timeout=30) == {job: "COMPLETED" for job in deep}
        assert client.store_smembers("deep/shards_done") == sorted(deep)
        workers = {client.job_info(job)["worker"] for job in deep}
        assert len(workers) >= 2, f"ten parallel jobs all ran on {workers}"


def test_self_healing_agent_reruns_elsewhere_or_escalates(as_readme_says):
    ram, cuda, module = as_readme_says("self_healing").outputs
    for output, root_cause, where in (
            (ram, "the run ran out of memory", "on high_memory-1 (needs HIGH_MEMORY)"),
            (cuda, "the GPU ran out of memory", "(needs GENERAL)")):
        assert "flaky_training_run: FAILED" in output and "decided by rules" in output
        assert f"Root cause: {root_cause}" in output and "flaky_training_run_fix: COMPLETED " in output
        assert where in output, output
    assert "flaky_training_run_fix: COMPLETED on worker-" in cuda
    assert "Escalating to a person: module 'flash_attn' is not installed" in module
    assert "no fix job was submitted" in module


def test_self_healing_agent_asks_a_configured_llm(as_readme_says, tmp_path):
    """A stand-in model: a command that reads the prompt on stdin and answers like a chat model would."""
    model = tmp_path / "model.py"
    model.write_text("import sys\nprompt = sys.stdin.read()\n"
                     "gpu = 'CUDA out of memory' in prompt\n"
                     "print('Sure. {\"action\": \"RERUN\", \"reason\": \"model says: ' + "
                     "('GPU' if gpu else 'RAM') + ' exhausted\", \"requirement\": \"HIGH_MEMORY\"}')\n")
    ram, cuda, module = as_readme_says("self_healing", TITAN_LLM_COMMAND=f"{sys.executable} {model}").outputs
    assert "decided by llm" in cuda and "Root cause: model says: GPU exhausted" in cuda
    assert "flaky_training_run_fix: COMPLETED on high_memory-1" in cuda


def test_self_healing_says_which_cluster_it_needs_when_started_on_another(tmp_path):
    """Against a cluster without a HIGH_MEMORY worker it says so at once, instead of a timeout's traceback."""
    port = free_port_block("127.0.0.1", 4)
    up = start_process([TITAN, "up", "--port", str(port)])
    try:
        assert "Ctrl-C stops" in "".join(iter_lines_until(up, "Ctrl-C stops"))
        started = time.monotonic()
        result = subprocess.run([sys.executable, os.path.join(EXAMPLES, "self_healing", "run.py")], timeout=60,
                                capture_output=True, text=True, env={**os.environ, "TITAN_PORT": str(port)})
    finally:
        stop(up, signal.SIGINT, timeout=20)
    assert result.returncode == 1 and time.monotonic() - started < 30
    assert "Traceback" not in result.stderr
    assert "no connected worker offers HIGH_MEMORY" in result.stderr and "titan up --cap HIGH_MEMORY" in result.stderr


def test_recursive_agent_keeps_memory_in_titanstore(as_readme_says):
    run = as_readme_says("recursive_agent")
    with run.client() as client:
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
    assert f"the agent ran {len(ran)} time(s)" in run.outputs[0]


def _exists(client, job_id: str) -> bool:
    return client.get_job_status(job_id) != "NULL"


def test_code_healer_loops_until_the_tests_pass(as_readme_says, tmp_path):
    original = open(os.path.join(EXAMPLES, "code_healer", "project", "stats.py")).read()
    run = as_readme_says("code_healer")
    assert "tests pass after 4 round(s)" in run.outputs[0], run.outputs[0]
    healed_dir = tmp_path / "healed"   # the README's `healed`, in the folder the commands ran from
    healed = (healed_dir / "stats.py").read_text()
    assert healed != original and "reslt" not in healed and ".apend(" not in healed
    assert "if len(values) else 0.0" in healed
    shutil.copy(os.path.join(EXAMPLES, "code_healer", "project", "test_stats.py"), healed_dir)
    check = "import test_stats as t; [getattr(t, n)() for n in dir(t) if n.startswith('test_')]; print('ok')"
    ran = subprocess.run([sys.executable, "-c", check], cwd=healed_dir, capture_output=True, text=True, timeout=30)
    assert ran.stdout.strip() == "ok", ran.stderr
    with run.client() as client:
        states = [client.get_job_status(f"code_healer_tests_{n}") for n in range(1, 5)]
        assert states == ["FAILED", "FAILED", "FAILED", "COMPLETED"]
        assert len(client.store_smembers("code_healer/patches")) == 3
        assert "decided by rules: PATCH" in client.fetch_logs("code_healer_fix_1")


def test_doc_dispatcher_documents_every_function_of_every_file(as_readme_says, tmp_path):
    sources = os.path.join(EXAMPLES, "doc_dispatcher", "sample_src")
    run = as_readme_says("doc_dispatcher")
    assert "2 of 2 files documented" in run.outputs[0]
    docs = (tmp_path / "DOCS.md").read_text()
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
    with run.client() as client:
        dag = client.dag_status("doc_dispatcher")
        assert [job["state"] for job in dag["jobs"]] == ["COMPLETED", "COMPLETED"]


def test_service_pipeline_calls_the_service_and_stops_it(as_readme_says):
    run = as_readme_says("service_pipeline")
    assert "predict(1) = 3\npredict(2) = 5\npredict(3) = 7" in run.outputs[0]
    assert "up: True" in run.outputs[0] and "after stop_service: COMPLETED" in run.outputs[0]
    with run.client() as client:
        server = client.job_info("model_server")
        assert (server["state"], server["reason"]) == ("COMPLETED", "stopped by request")
        assert "served" in client.fetch_logs("model_server")
        assert all(worker["services"] == [] for worker in client.stats()["workers"])


def test_yaml_pipelines_run_each_step_after_its_parents(as_readme_says):
    run = as_readme_says("yaml_pipelines")
    diamond, fanout = run.outputs
    assert diamond.splitlines()[-1].startswith("4 of 4 jobs completed"), diamond
    assert fanout.splitlines()[-1].startswith("7 of 7 jobs completed"), fanout
    with run.client() as client:
        order = {job: int(client.store_get(f"yaml_diamond/ran/{job}")) for job in ("prepare", "left", "right", "join")}
        assert order["prepare"] == 1 and order["join"] == 4
        shards = [int(client.store_get(f"yaml_fanout/ran/shard_{i}")) for i in range(1, 6)]
        assert int(client.store_get("yaml_fanout/ran/split")) == 1 and sorted(shards) == [2, 3, 4, 5, 6]


def test_hitl_pipeline_waits_for_the_approval_given_from_another_terminal(as_readme_says):
    run = as_readme_says("hitl_pipeline")
    assert "hitl-gate-train WAITING_APPROVAL" in run.outputs[0]
    assert run.outputs[0].splitlines()[-1].startswith("2 of 2 jobs completed"), run.outputs[0]
    with run.client() as client:
        assert client.fetch_logs("deploy") == "deploying the model with validation loss 0.042\n"


def test_mcp_agent_loop_fans_out_and_checks_its_results(as_readme_says):
    run = as_readme_says("mcp")
    assert "fanning out to" in run.outputs[0] and "agent: checked: 75 words" in run.outputs[0], run.outputs[0]
