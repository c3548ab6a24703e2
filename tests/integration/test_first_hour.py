"""A new user's first hour, as the README leads them through it: the `titan` command run as a subprocess
against a real cluster, each test for one thing that went wrong or was missing (issue 16)."""

from __future__ import annotations

import importlib.metadata
import json
import os
import pty
import re
import select
import shlex
import signal
import subprocess
import sys
import threading
import time
import urllib.request

import pytest

from tests.conftest import TITAN, finish, start_process, stop, wait_until
from tests.integration.test_cli import cluster_env, run_in_terminal, titan
from titan.cluster import WorkerSpec, free_port_block
from titan.core.errors import UnknownJob
from titan_sdk import TitanJob

EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "..", "examples")


# ----------------------------------------------------------------- submit names the job after the script

def test_submit_names_the_job_after_the_script_as_the_readme_uses_it(cluster, client, tmp_path):
    release = tmp_path / "release"
    train = tmp_path / "train.py"
    train.write_text(f"import os, time\nprint('training')\nwhile not os.path.exists({str(release)!r}): "
                     "time.sleep(0.05)\n")
    first = titan(cluster, "submit", str(train))
    assert first.returncode == 0 and first.stdout == "submitted train\n", first.stdout + first.stderr
    wait_until(lambda: client.get_job_status("train") == "RUNNING", what="train to run")
    status = titan(cluster, "status", "train")
    assert status.returncode == 0 and "state: RUNNING" in status.stdout, status.stdout + status.stderr

    second, third = titan(cluster, "submit", str(train)), titan(cluster, "submit", str(train))
    assert (second.stdout, third.stdout) == ("submitted train-2\n", "submitted train-3\n")

    cancelled = titan(cluster, "cancel", "train")
    assert cancelled.returncode == 0 and cancelled.stdout == "train: CANCELLED\n", cancelled.stderr
    assert "training" in titan(cluster, "logs", "train").stdout
    again = titan(cluster, "submit", str(train))   # `train` has ended: the name is free again
    assert again.stdout == "submitted train\n", again.stdout + again.stderr
    release.write_text("go")
    assert client.wait(["train", "train-2", "train-3"], timeout=30) == {
        "train": "COMPLETED", "train-2": "COMPLETED", "train-3": "COMPLETED"}


# ----------------------------------------------------------------- run --wait: a gate is not a job

HITL_PIPELINE = os.path.join(EXAMPLES, "hitl_pipeline", "pipeline.yaml")


def state_of(client, job_id: str):
    try:
        return client.get_job_status(job_id)
    except UnknownJob:   # not submitted yet
        return None


def approve_when_waiting(cluster, client, gate: str) -> None:
    wait_until(lambda: state_of(client, gate) == "WAITING_APPROVAL", what=f"{gate} to wait")
    approved = titan(cluster, "approve", gate)
    assert approved.returncode == 0, approved.stderr


def test_run_wait_off_a_terminal_counts_the_pipelines_jobs_not_its_gate(cluster, client):
    run = start_process([TITAN, "run", HITL_PIPELINE, "--wait"], env=cluster_env(cluster))
    try:
        approve_when_waiting(cluster, client, "hitl-gate-train")
    finally:
        out, err = finish(run)
    assert run.returncode == 0, out + err
    assert out.splitlines()[-1].startswith("2 of 2 jobs completed"), out
    assert "hitl-gate-train WAITING_APPROVAL" in out   # the gate is shown as it happens, not counted


def test_run_wait_on_a_terminal_says_the_same(cluster, client):
    result = {}
    runner = threading.Thread(target=lambda: result.update(
        zip(("code", "output"), run_in_terminal(cluster, "run", HITL_PIPELINE, "--wait"))))
    runner.start()
    approve_when_waiting(cluster, client, "hitl-gate-train")
    runner.join(60)
    assert result["code"] == 0, result["output"]
    assert "2 of 2 jobs completed" in result["output"], result["output"]


# ----------------------------------------------------------------- a master that does not answer

def stderr_lines_with_times(command, timeout: float = 30, stream: str = "stderr", **kwargs) -> tuple:
    """Run `command`; returns (exit code, [(seconds since start, stderr line)], seconds it took)."""
    started = time.monotonic()
    process = start_process(command, **kwargs)
    lines = []
    try:
        for line in iter(getattr(process, stream).readline, ""):
            lines.append((time.monotonic() - started, line.rstrip("\n")))
        process.wait(timeout)
    finally:
        finish(process, timeout=5)
    return process.returncode, lines, time.monotonic() - started


@pytest.mark.parametrize("command", [["status"], ["events"], ["run", HITL_PIPELINE, "--wait"]])
def test_a_master_that_is_down_is_named_within_seconds_and_given_up_on_at_the_timeout(command):
    port = free_port_block("127.0.0.1", 4)
    code, lines, took = stderr_lines_with_times(
        [TITAN, *command, "--host", "127.0.0.1", "--port", str(port), "--timeout", "7"])
    assert code == 1, lines
    first_at, first = lines[0]
    assert first.startswith(f"titan {command[0]}: the master at 127.0.0.1:{port} is not answering"), lines
    assert "--keys" in first and "up to 7s" in first
    # Said at the first retry, about 2 s into the 7 s of trying: measured back from when it gave up, so a
    # slow interpreter start on a busy machine does not count.
    assert took - first_at > 7 - 2 - 1.5, f"the first word came {took - first_at:.1f}s before giving up"
    assert 7 <= took < 20 and "did not answer" in lines[-1][1], (took, lines)


def test_a_master_with_keys_is_said_to_answer_only_known_keys(make_cluster, tmp_path):
    key_dir = str(tmp_path / "keys")
    assert subprocess.run([TITAN, "keys", "init", key_dir], capture_output=True, timeout=30).returncode == 0
    cluster = make_cluster(WorkerSpec("w1"), keys=key_dir)
    env = {k: v for k, v in cluster_env(cluster).items() if k != "TITAN_KEYS"}
    code, lines, _ = stderr_lines_with_times([TITAN, "workers", "--timeout", "3"], env=env)
    assert code == 1 and "answers only known keys: give --keys or set TITAN_KEYS" in lines[0][1], lines


def long_pipeline(tmp_path) -> str:
    (tmp_path / "slow.py").write_text("import time\ntime.sleep(60)\n")
    (tmp_path / "slow.yaml").write_text("name: slow\njobs:\n  - id: slow\n    file: slow.py\n")
    return str(tmp_path / "slow.yaml")


def test_run_wait_timeout_is_kept_on_a_terminal(cluster, client, tmp_path):
    started = time.monotonic()
    code, output = run_in_terminal(cluster, "run", long_pipeline(tmp_path), "--wait", "--timeout", "3")
    assert code == 1 and time.monotonic() - started < 15, output
    assert "gave up after --timeout 3s; these keep running: slow" in output, output
    assert client.get_job_status("slow") == "RUNNING"
    client.cancel("slow")


def test_run_wait_timeout_off_a_terminal_says_the_jobs_keep_running(cluster, client, tmp_path):
    result = titan(cluster, "run", long_pipeline(tmp_path), "--wait", "--timeout", "3")
    assert result.returncode == 1 and "gave up after --timeout 3s" in result.stderr, result.stderr
    assert client.get_job_status("slow") == "RUNNING"
    client.cancel("slow")


# ----------------------------------------------------------------- why a job waits

NO_TPU = "waiting for a worker with capability TPU; connected workers offer: GENERAL, GPU"


def test_submit_wait_says_at_once_why_no_worker_takes_the_job(cluster, tmp_path):
    (tmp_path / "tpu.py").write_text("print('ok')\n")
    code, lines, _ = stderr_lines_with_times(
        [TITAN, "submit", str(tmp_path / "tpu.py"), "--requirement", "TPU", "--wait", "--timeout", "8"],
        stream="stdout", env=cluster_env(cluster))
    said = [at for at, line in lines if line == f"tpu QUEUED: {NO_TPU}"]
    assert code == 1 and len(said) == 1 and said[0] < 4.5, lines


def test_submit_wait_on_a_terminal_shows_why_under_the_bar(cluster, tmp_path):
    (tmp_path / "tpu.py").write_text("print('ok')\n")
    code, output = run_in_terminal(cluster, "submit", str(tmp_path / "tpu.py"), "--requirement", "TPU", "--wait",
                                   "--timeout", "3")
    assert code == 1 and f"tpu waits: {NO_TPU}" in output, output


def test_run_wait_says_why_a_pipeline_job_waits(cluster, tmp_path):
    (tmp_path / "tpu.py").write_text("print('ok')\n")
    (tmp_path / "p.yaml").write_text("name: needs_tpu\njobs:\n  - id: tpu\n    file: tpu.py\n    requirement: TPU\n")
    result = titan(cluster, "run", str(tmp_path / "p.yaml"), "--wait", "--timeout", "4")
    assert result.returncode == 1 and f"tpu       QUEUED      ({NO_TPU})" in result.stdout, result.stdout


def test_a_requirement_that_differs_only_by_case_is_warned_about(cluster, client, tmp_path):
    (tmp_path / "gpu.py").write_text("print('ok')\n")
    result = titan(cluster, "submit", str(tmp_path / "gpu.py"), "--requirement", "gpu")
    assert result.returncode == 0 and result.stderr == (
        "titan submit: warning: no connected worker offers 'gpu', but one offers 'GPU': capabilities are "
        "case-sensitive\n"), result.stderr
    client.cancel("gpu")


# ----------------------------------------------------------------- Ctrl-C while waiting

@pytest.mark.parametrize("command, cancel", [
    (["submit", "{dir}/slow.py", "--wait"], "titan cancel slow"),
    (["run", "{dir}/slow.yaml", "--wait"], "titan cancel --dag slow"),
])
def test_ctrl_c_while_waiting_says_the_job_keeps_running_and_how_to_cancel_it(cluster, client, tmp_path, command,
                                                                              cancel):
    long_pipeline(tmp_path)
    waiter = start_process([TITAN, *(word.format(dir=tmp_path) for word in command)], env=cluster_env(cluster))
    try:
        wait_until(lambda: state_of(client, "slow") == "RUNNING", what="slow to run")
        time.sleep(0.5)   # into the wait
    finally:
        out, err = stop(waiter, signal.SIGINT)
    assert waiter.returncode == 130, out + err
    assert "keeps running on the cluster" in err and f"(cancel it with: {cancel})" in err, err
    assert "Traceback" not in err
    assert client.get_job_status("slow") == "RUNNING"
    client.cancel("slow")


# ----------------------------------------------------------------- titan up: a busy port, temporary folders

def test_titan_up_on_a_busy_port_says_why_instead_of_its_banner(tmp_path):
    port = free_port_block("127.0.0.1", 4)
    master = start_process([sys.executable, "-m", "titan.master", "--port", str(port)])
    try:
        master.stdout.readline()
        result = subprocess.run([TITAN, "up", "--port", str(port)], capture_output=True, text=True, timeout=60,
                                env={**os.environ, "TMPDIR": str(tmp_path)})
    finally:
        stop(master)
    assert result.returncode == 1 and result.stdout == "", result.stdout
    assert result.stderr == (f"titan up: port {port}, {port + 1}, {port + 2}, {port + 3} on 127.0.0.1 is already in "
                             "use (another titan up or master?): stop it, or pick other ports with --port (titan up "
                             "uses PORT..PORT+3)\n")
    assert os.listdir(tmp_path) == []


def test_titan_up_leaves_no_temporary_folder_behind(tmp_path):
    port = free_port_block("127.0.0.1", 4)
    up = start_process([TITAN, "up", "--port", str(port), "--workers", "1"],
                       env={**os.environ, "TMPDIR": str(tmp_path)})
    try:
        wait_until(lambda: "Ctrl-C stops" in up.stdout.readline(), what="titan up's banner")
        assert any(name.startswith("titan-up-") for name in os.listdir(tmp_path))
    finally:
        stop(up, signal.SIGINT, timeout=20)
    assert up.returncode == 0
    assert os.listdir(tmp_path) == []


def test_a_master_that_cannot_bind_leaves_no_artifact_folder(tmp_path):
    port = free_port_block("127.0.0.1", 4)
    first = start_process([sys.executable, "-m", "titan.master", "--port", str(port)])
    try:
        first.stdout.readline()
        second = subprocess.run([sys.executable, "-m", "titan.master", "--port", str(port)], capture_output=True,
                                text=True, timeout=30, env={**os.environ, "TMPDIR": str(tmp_path)})
    finally:
        stop(first)
    assert second.returncode == 1 and "cannot bind" in second.stderr
    assert os.listdir(tmp_path) == []


# ----------------------------------------------------------------- titan top and SIGTERM

def test_titan_top_killed_with_sigterm_shows_the_cursor_again(cluster):
    controller, terminal = pty.openpty()
    env = {**cluster_env(cluster), "COLUMNS": "100", "LINES": "40", "TERM": "xterm"}
    top = subprocess.Popen([TITAN, "top"], stdout=terminal, stderr=terminal, stdin=subprocess.DEVNULL, env=env,
                           start_new_session=True)
    os.close(terminal)
    output = b""
    try:
        def read_some() -> bytes:
            return os.read(controller, 65536) if select.select([controller], [], [], 0.1)[0] else b""

        while b"recent events" not in output:
            output += read_some()
            assert top.poll() is None, output
        top.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        while top.poll() is None or select.select([controller], [], [], 0.1)[0]:
            try:
                output += read_some()
            except OSError:   # the terminal closed
                break
            assert time.monotonic() < deadline, "titan top did not stop"
    finally:
        os.close(controller)
        if top.poll() is None:
            os.killpg(top.pid, signal.SIGKILL)
        top.wait()
    hide, show = b"\x1b[?25l", b"\x1b[?25h"
    assert hide in output and output.rfind(show) > output.rfind(hide), output[-300:]
    assert top.returncode == 0


# ----------------------------------------------------------------- --version, python -m titan, titan master/worker

def test_version_from_the_command_and_from_python_m_titan():
    version = importlib.metadata.version("titan-scheduler")
    for command in ([TITAN, "--version"], [sys.executable, "-m", "titan", "--version"]):
        result = subprocess.run(command, capture_output=True, text=True, timeout=30)
        assert result.returncode == 0 and result.stdout == f"titan {version}\n", result


@pytest.mark.parametrize("process", ["master", "worker"])
def test_titan_master_and_worker_take_the_same_flags_as_python_m(process):
    def flags(command) -> list:
        result = subprocess.run(command, capture_output=True, text=True, timeout=30)
        assert result.returncode == 0, result.stderr
        return sorted(set(re.findall(r"--[a-z][a-z-]+", result.stdout)))

    assert flags([TITAN, process, "--help"]) == flags([sys.executable, "-m", f"titan.{process}", "--help"])


def test_a_cluster_from_titan_master_and_titan_worker_with_log_levels(tmp_path):
    port = free_port_block("127.0.0.1", 4)
    master = start_process([TITAN, "master", "--port", str(port)])
    worker = start_process([TITAN, "worker", "--master", f"127.0.0.1:{port}", "--name", "quiet"],
                           env={**os.environ, "TITAN_LOG_LEVEL": "warning"})
    (tmp_path / "ok.py").write_text("print('ok')\n")
    try:
        result = subprocess.run([TITAN, "submit", str(tmp_path / "ok.py"), "--wait", "--port", str(port)],
                                capture_output=True, text=True, timeout=60)
    finally:
        worker_out, worker_err = stop(worker, signal.SIGTERM)
        master_out, master_err = stop(master, signal.SIGTERM)
    assert result.returncode == 0 and "1 of 1 jobs completed" in result.stdout, result.stderr
    assert "master INFO worker quiet registered" in master_err   # INFO by default
    assert "Titan worker quiet" in worker_out and " INFO " not in worker_err, worker_err   # WARNING from the env
    assert master.returncode == 0 and worker.returncode == 0


def test_a_bad_log_level_is_named():
    bad = subprocess.run([TITAN, "master", "--log-level", "LOUD"], capture_output=True, text=True, timeout=30)
    assert bad.returncode == 2 and "--log-level: invalid choice: 'LOUD'" in bad.stderr
    from_env = subprocess.run([sys.executable, "-m", "titan.worker"], capture_output=True, text=True, timeout=30,
                              env={**os.environ, "TITAN_LOG_LEVEL": "loud"})
    assert from_env.returncode == 1 and from_env.stderr == (
        "titan worker: TITAN_LOG_LEVEL must be one of DEBUG, INFO, WARNING, ERROR, got 'LOUD'\n")


def test_dashboard_log_level_debug_logs_each_request(cluster):
    dashboard = start_process([TITAN, "dashboard", "--port", "0", "--log-level", "DEBUG"], env=cluster_env(cluster))
    try:
        line = wait_until(lambda: dashboard.stdout.readline(), what="the dashboard's first line")
        url = re.search(r"http://\S+/", line).group(0)
        with urllib.request.urlopen(url + "metrics", timeout=10) as page:
            assert page.status == 200
    finally:
        out, err = stop(dashboard, signal.SIGTERM)
    assert re.search(r"dashboard DEBUG 127\.0\.0\.1 \"GET /metrics HTTP/1\.1\" 200", err), err


# ----------------------------------------------------------------- --json

def test_status_and_workers_as_json(cluster, client, tmp_path):
    (tmp_path / "ok.py").write_text("print('ok')\n")
    client.submit_dag("pipe", [TitanJob("first", str(tmp_path / "ok.py"))])
    client.wait("first", timeout=30)
    job = json.loads(titan(cluster, "status", "first", "--json").stdout)
    assert (job["job_id"], job["state"], job["dag"]) == ("first", "COMPLETED", "pipe")
    dag = json.loads(titan(cluster, "status", "pipe", "--json").stdout)
    assert dag["finished"] is True and [j["job_id"] for j in dag["jobs"]] == ["first"]
    summary = json.loads(titan(cluster, "status", "--json").stdout)
    assert summary["jobs_by_state"]["COMPLETED"] == 1 and len(summary["workers"]) == 2
    workers = json.loads(titan(cluster, "workers", "--json").stdout)
    assert [(w["name"], w["capabilities"]) for w in workers] == [("cpu-1", ["GENERAL"]), ("gpu-1", ["GENERAL", "GPU"])]
    missing = titan(cluster, "status", "nosuch", "--json")
    assert missing.returncode == 1 and missing.stdout == "" and "no job or DAG named 'nosuch'" in missing.stderr


# ----------------------------------------------------------------- the package: licence, metadata, types

def test_the_package_says_its_licence_authors_and_classifiers_and_ships_py_typed():
    import titan
    import titan_sdk

    metadata = importlib.metadata.metadata("titan-scheduler")
    assert metadata["License"] == "MIT" and metadata["Author"] == "The Titan maintainers"
    assert metadata["Version"] == titan.__version__
    classifiers = metadata.get_all("Classifier")
    assert "License :: OSI Approved :: MIT License" in classifiers and "Typing :: Typed" in classifiers
    root = os.path.dirname(os.path.dirname(titan.__file__))
    with open(os.path.join(root, "LICENSE")) as licence:
        assert licence.readline() == "MIT License\n"
    for package in (titan, titan_sdk):
        assert os.path.isfile(os.path.join(os.path.dirname(package.__file__), "py.typed"))


# ----------------------------------------------------------------- shell completion

@pytest.mark.parametrize("typed, expected", [("titan st", {"status", "store"}),
                                             ("titan submit --re", {"--requirement", "--retries"})])
def test_bash_completes_commands_and_flags_with_the_script_titan_prints(typed, expected):
    script = f"""
        eval "$(titan completion bash)"
        COMP_LINE={shlex.quote(typed)}; COMP_POINT=${{#COMP_LINE}}
        COMP_WORDS=({typed}); COMP_CWORD=$(( ${{#COMP_WORDS[@]}} - 1 ))
        _python_argcomplete titan "${{COMP_WORDS[COMP_CWORD]}}" "${{COMP_WORDS[COMP_CWORD-1]}}"
        printf '%s\\n' "${{COMPREPLY[@]}}"
    """
    env = {**os.environ, "PATH": os.path.dirname(TITAN) + os.pathsep + os.environ["PATH"]}
    result = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=30, env=env)
    assert {word.strip() for word in result.stdout.split()} == expected, result.stdout + result.stderr


def test_run_wait_on_a_terminal_shows_why_under_the_bar(cluster, tmp_path):
    (tmp_path / "tpu.py").write_text("print('ok')\n")
    (tmp_path / "p.yaml").write_text("name: needs_tpu\njobs:\n  - id: tpu\n    file: tpu.py\n    requirement: TPU\n")
    code, output = run_in_terminal(cluster, "run", str(tmp_path / "p.yaml"), "--wait", "--timeout", "4")
    assert code == 1 and f"tpu waits: {NO_TPU}" in output, output
