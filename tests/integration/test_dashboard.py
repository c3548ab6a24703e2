"""The web dashboard and /metrics as a user runs them: `python -m titan.web` against a real cluster, read
with a plain HTTP client, and the page in a real headless Chromium."""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from typing import Callable, Optional
from urllib.parse import urlsplit

import pytest
from prometheus_client.parser import text_string_to_metric_families

from titan.cluster import WorkerSpec
from titan.web import add_commands
from titan_sdk import TitanJob
from tests.conftest import wait_until

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
STATE_TIMEOUT_MS = 60_000


class DashboardURL(str):
    """The dashboard's base URL (http://127.0.0.1:PORT/), with the token it printed at start: `.token`,
    and the address a person opens, `.with_token`."""

    token: str = ""

    @property
    def with_token(self) -> str:
        return f"{self}?token={self.token}"


def start_dashboard(cluster) -> tuple:
    # A session of its own, so a failed test can kill it whole.
    process = subprocess.Popen([sys.executable, "-m", "titan.web", "--port", "0", "--master-host", cluster.host,
                                "--master-port", str(cluster.port)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               stdin=subprocess.DEVNULL, text=True, start_new_session=True)
    first_line = process.stdout.readline()
    assert first_line.startswith("Titan dashboard on http://127.0.0.1:"), (first_line, process.stderr.read())
    base, _, token = first_line.split()[3].partition("?token=")
    assert len(token) >= 32, first_line
    url = DashboardURL(base)
    url.token = token
    return process, url


def stop_dashboard(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        out, err = process.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        raise
    assert process.returncode == 0 and "Traceback" not in err, err
    assert "stopped" in out


@pytest.fixture
def dashboard(cluster):
    """The dashboard's base URL (http://127.0.0.1:PORT/), served by a real process following `cluster`."""
    process, url = start_dashboard(cluster)
    try:
        yield url
    finally:
        stop_dashboard(process)


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=30) as response:
        return response.read()


def metrics(url: str) -> dict:
    """{(sample name, labels as a sorted tuple): value} from /metrics."""
    text = get(url + "metrics").decode()
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def total(samples: dict, name: str) -> float:
    return sum(value for (sample, _), value in samples.items() if sample == name)


# ----------------------------------------------------------------- metrics


def test_metrics_count_jobs_workers_slots_queues_and_dispatches(client, dashboard, script, tmp_path):
    release = tmp_path / "release"
    waiter = script("waiter.py", f"""
        import os, time
        while not os.path.exists({str(release)!r}):
            time.sleep(0.05)
        """)
    ok, bad = script("ok.py", "print('ok')"), script("bad.py", "raise SystemExit(3)")
    client.submit_job(TitanJob("held", waiter))
    client.submit_job(TitanJob("unplaceable", ok, requirement="TPU"))
    running = wait_until(lambda: (lambda m: m if total(m, "titan_worker_slots_used") == 1 else None)(metrics(dashboard)),
                         what="one slot in use while 'held' runs")
    assert running[("titan_workers", ())] == 2
    assert total(running, "titan_worker_slots") == 4
    assert running[("titan_queue_depth", (("requirement", "TPU"),))] == 1
    assert running[("titan_jobs", (("state", "RUNNING"),))] == 1
    assert running[("titan_master_up", ())] == 1

    client.submit_dag("measured", [TitanJob("m1", ok), TitanJob("m2", ok, parents=["m1"]), TitanJob("m3", bad)])
    release.write_text("go")
    client.cancel("unplaceable")
    assert client.wait(["held", "m1", "m2", "m3"], timeout=30) == \
        {"held": "COMPLETED", "m1": "COMPLETED", "m2": "COMPLETED", "m3": "FAILED"}

    dispatched = 4     # held, m1, m2, m3; 'unplaceable' never ran
    after = wait_until(lambda: (lambda m: m if m[("titan_job_run_seconds_count", ())] == dispatched else None)(
        metrics(dashboard)), what="every run seen by the run time histogram")
    assert after[("titan_job_dispatch_latency_seconds_count", ())] == dispatched
    assert after[("titan_job_dispatch_latency_seconds_bucket", (("le", "+Inf"),))] == dispatched
    jobs = {labels[0][1]: value for (name, labels), value in after.items() if name == "titan_jobs"}
    assert jobs == {"PENDING": 0, "QUEUED": 0, "RUNNING": 0, "COMPLETED": 3, "FAILED": 1, "CANCELLED": 1,
                    "WAITING_APPROVAL": 0}
    assert total(after, "titan_worker_slots_used") == 0 and total(after, "titan_queue_depth") == 0
    assert after[("titan_job_run_seconds_sum", ())] > 0


# ----------------------------------------------------------------- the event stream


class EventStreamReader:
    """Reads /api/events with a plain HTTP client, one `data:` message at a time."""

    def __init__(self, url: str):
        address = urlsplit(url)
        self.connection = http.client.HTTPConnection(address.hostname, address.port, timeout=30)
        self.connection.request("GET", "/api/events")
        self.response = self.connection.getresponse()
        assert self.response.status == 200
        assert self.response.getheader("Content-Type") == "text/event-stream"

    def next(self) -> dict:
        while True:
            line = self.response.readline()
            assert line, "the dashboard ended the event stream"
            if line.startswith(b"data: "):
                return json.loads(line[len(b"data: "):])

    def until(self, wanted: Callable[[dict], bool], timeout: float = 30, what: str = "") -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            message = self.next()
            if wanted(message):
                return message
        raise AssertionError(f"no message within {timeout}s: {what}")

    def close(self) -> None:
        self.connection.close()


def is_event(topic: str, job_id: Optional[str] = None) -> Callable[[dict], bool]:
    return lambda m: m["type"] == "event" and m["event"]["topic"] == topic and \
        (job_id is None or m["event"]["job_id"] == job_id)


def test_event_stream_sends_a_snapshot_then_each_dag_and_event(client, dashboard, script):
    ok = script("ok.py", "print('ok')")
    stream = EventStreamReader(dashboard)
    try:
        snapshot = stream.next()
        assert snapshot["type"] == "snapshot" and snapshot["master"]["up"] is True
        assert sorted(w["name"] for w in snapshot["stats"]["workers"]) == ["cpu-1", "gpu-1"]
        client.submit_dag("streamed", [TitanJob("s1", ok), TitanJob("s2", ok, parents=["s1"], requirement="GPU")])
        shape = stream.until(lambda m: m["type"] == "dag" and m["dag"] == "streamed", what="the DAG's shape")
        assert {job["job_id"]: job["parents"] for job in shape["jobs"]} == {"s1": [], "s2": ["s1"]}
        running = stream.until(is_event("job.RUNNING", "s2"), what="s2 RUNNING")
        assert running["event"]["worker"] == "gpu-1" and running["event"]["run_id"] == snapshot["run_id"]
        stream.until(is_event("job.COMPLETED", "s2"), what="s2 COMPLETED")
        finished = stream.until(is_event("dag.finished"), what="the DAG finishing")
        assert finished["event"]["counts"] == {"COMPLETED": 2}
    finally:
        stream.close()
    later = json.loads(get(dashboard + "api/snapshot"))
    (dag,) = [d for d in later["dags"] if d["dag"] == "streamed"]
    assert dag["finished"] and [job["state"] for job in dag["jobs"]] == ["COMPLETED", "COMPLETED"]


def test_a_dag_submitted_before_the_dashboard_started_is_in_its_snapshot(cluster, client, script):
    ok = script("ok.py", "print('ok')")
    client.submit_dag("earlier", [TitanJob("e1", ok), TitanJob("e2", ok, parents=["e1"])])
    assert client.wait(["e1", "e2"], timeout=30) == {"e1": "COMPLETED", "e2": "COMPLETED"}
    process, url = start_dashboard(cluster)
    try:
        snapshot = json.loads(get(url + "api/snapshot"))
        (dag,) = [d for d in snapshot["dags"] if d["dag"] == "earlier"]
        assert [(job["job_id"], job["state"]) for job in dag["jobs"]] == [("e1", "COMPLETED"), ("e2", "COMPLETED")]
    finally:
        stop_dashboard(process)


def test_event_stream_resnapshots_when_the_master_restarts(make_cluster, script, tmp_path):
    cluster = make_cluster(WorkerSpec("cpu-1", slots=2), data_dir=str(tmp_path / "journal"))
    ok = script("ok.py", "print('ok')")
    process, url = start_dashboard(cluster)
    try:
        stream = EventStreamReader(url)
        first = stream.next()
        with cluster.client(timeout=15) as client:
            client.submit_dag("before", [TitanJob("b1", ok)])
            assert client.wait("b1", timeout=30) == "COMPLETED"
        stream.until(is_event("dag.finished"), what="'before' finishing")
        cluster.master.kill()
        cluster.master.wait(timeout=10)
        cluster.start_master()
        fresh = stream.until(lambda m: m["type"] == "snapshot" and m["run_id"] not in (None, first["run_id"]),
                             timeout=45, what="a snapshot of the restarted master")
        (before,) = [d for d in fresh["dags"] if d["dag"] == "before"]
        assert [job["state"] for job in before["jobs"]] == ["COMPLETED"], "the journal kept it"
        with cluster.client(timeout=15) as client:
            client.submit_dag("after", [TitanJob("a1", ok)])
            done = stream.until(is_event("job.COMPLETED", "a1"), timeout=45, what="a1 after the restart")
        assert done["event"]["run_id"] == fresh["run_id"]
        stream.close()
    finally:
        stop_dashboard(process)


# ----------------------------------------------------------------- bad requests


def request(url: str, method: str = "GET", body: Optional[bytes] = None, headers: Optional[dict] = None) -> tuple:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=body, method=method, headers=headers or {}),
                                    timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_bad_requests_get_a_clear_error(client, dashboard, script):
    client.submit_job(TitanJob("plain", script("ok.py", "print('ok')")))
    assert client.wait("plain", timeout=30) == "COMPLETED"
    json_headers = {"Content-Type": "application/json"}
    assert request(dashboard + "api/logs") == (400, {"error": "give ?job=JOB_ID and optionally &offset=N (N >= 0)",
                                                     "kind": "Bad Request"})
    status, answer = request(dashboard + "api/logs?job=nobody")
    assert status == 404 and "nobody" in answer["error"] and answer["kind"] == "UnknownJob"
    for wrong in ({}, {"X-Titan-Token": "guessed"}, {"X-Titan-Token": dashboard.token[:-1]}):
        status, answer = request(dashboard + "api/gates/plain/approve", "POST", b"{}", {**json_headers, **wrong})
        assert status == 403 and "token" in answer["error"], answer
    json_headers["X-Titan-Token"] = dashboard.token
    status, answer = request(dashboard + "api/gates/plain/approve", "POST", b"{}", json_headers)
    assert status == 409 and answer["kind"] == "GateError", answer
    status, answer = request(dashboard + "api/gates/plain/approve", "POST", b"x=1",
                             {"Content-Type": "application/x-www-form-urlencoded", "X-Titan-Token": dashboard.token})
    assert status == 415 and "application/json" in answer["error"]
    status, answer = request(dashboard + "api/gates/plain/reject", "POST", b"{}",
                             {**json_headers, "Origin": "http://evil.example"})
    assert status == 403 and "evil.example" in answer["error"]
    status, answer = request(dashboard + "api/snapshot", headers={"Host": "rebound.example:80"})
    assert status == 403 and "rebound.example" in answer["error"]
    status, answer = request(dashboard + "static/../server.py")
    assert status == 404
    assert client.get_job_status("plain") == "COMPLETED", "nothing was approved or rejected"
    assert json.loads(get(dashboard + "api/logs?job=plain&offset=1")) == \
        {"job_id": "plain", "state": "COMPLETED", "text": "k\n", "offset": 3, "skipped": 0}


def test_add_commands_gives_titan_a_dashboard_subcommand():
    parser = argparse.ArgumentParser(prog="titan")
    add_commands(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["dashboard", "--port", "0", "--master-port", "9190"])
    assert (args.port, args.host, args.master_port, args.master_host) == (0, "127.0.0.1", 9190, None)
    assert parser.parse_args(["dashboard", "--keys", "/k"]).keys == "/k"
    assert callable(args.run)


# ----------------------------------------------------------------- the page in a real browser


@pytest.mark.timeout(240)
@pytest.mark.skipif(not os.path.exists(CHROMIUM),
                    reason=f"needs Debian's chromium at {CHROMIUM}: apt-get install -y chromium")
def test_page_follows_dags_streams_logs_and_approves_a_gate(client, dashboard, script, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api", reason="needs playwright: pip install -e '.[test]'")
    release = tmp_path / "release"
    hello = script("hello.py", "import os\nprint('hello from', os.environ.get('TITAN_JOB_ID', 'a job'))\n")
    chatty = script("chatty.py", f"""
        import os, time
        print('first line', flush=True)
        while not os.path.exists({str(release)!r}):
            time.sleep(0.05)
        print('second line', flush=True)
        """)
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            errors = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(dashboard.with_token)
            page.wait_for_selector('#master-status[data-up="true"]', timeout=STATE_TIMEOUT_MS)
            assert "token" not in page.url, "the token stays in the address bar, to be shared with a link"
            page.wait_for_selector('.worker[data-worker="gpu-1"][data-slots="2"]', timeout=STATE_TIMEOUT_MS)
            follow_a_dag(client, page, hello)
            stream_logs(client, page, chatty, release)
            approve_a_gate(client, page, hello)
            counts_settle(page, completed=8)
            save_screenshot(page, tmp_path)
            assert errors == [], errors
        finally:
            browser.close()


def node(dag: str, job_id: str, state: str = "") -> str:
    wanted = f'[data-state="{state}"]' if state else ""
    return f'.dag-card[data-dag="{dag}"] .job-node[data-job-id="{job_id}"]{wanted}'


def follow_a_dag(client, page, hello: str) -> None:
    client.submit_dag("browser-dag", [TitanJob("root", hello), TitanJob("left", hello, parents=["root"]),
                                      TitanJob("right", hello, parents=["root"], requirement="GPU"),
                                      TitanJob("join", hello, parents=["left", "right"])])
    for job_id in ("root", "left", "right", "join"):
        page.wait_for_selector(node("browser-dag", job_id, "COMPLETED"), timeout=STATE_TIMEOUT_MS)
    edges = page.eval_on_selector_all('.dag-card[data-dag="browser-dag"] .edge',
                                      "paths => paths.map(p => p.dataset.from + '>' + p.dataset.to).sort()")
    assert edges == ["left>join", "right>join", "root>left", "root>right"]
    depth_x = page.eval_on_selector_all('.dag-card[data-dag="browser-dag"] .job-node',
                                        "nodes => Object.fromEntries(nodes.map(n => [n.dataset.jobId, "
                                        "n.transform.baseVal[0].matrix.e]))")
    assert depth_x["root"] < depth_x["left"] == depth_x["right"] < depth_x["join"], depth_x
    page.click(node("browser-dag", "right"))
    page.wait_for_function("document.querySelector('#log-text').textContent.includes('hello from right')",
                           timeout=STATE_TIMEOUT_MS)
    assert page.get_attribute("#log-panel", "data-job-id") == "right"
    assert "on gpu-1" in page.text_content("#log-facts")


def stream_logs(client, page, chatty: str, release) -> None:
    client.submit_dag("log-dag", [TitanJob("talker", chatty)])
    page.click(node("log-dag", "talker"))
    page.wait_for_function("document.querySelector('#log-text').textContent.includes('first line')",
                           timeout=STATE_TIMEOUT_MS)
    assert client.get_job_status("talker") == "RUNNING", "the first line showed while the job ran"
    assert page.get_attribute(node("log-dag", "talker"), "data-state") == "RUNNING"
    release.write_text("go")
    page.wait_for_function("document.querySelector('#log-text').textContent == 'first line\\nsecond line\\n'",
                           timeout=STATE_TIMEOUT_MS)
    page.wait_for_selector(node("log-dag", "talker", "COMPLETED"), timeout=STATE_TIMEOUT_MS)


def approve_a_gate(client, page, hello: str) -> None:
    client.submit_dag("gated-dag", [TitanJob("build", hello, hitl_message="Ship the build?"),
                                    TitanJob("ship", hello, parents=["build"])])
    page.wait_for_selector(node("gated-dag", "hitl-gate-build", "WAITING_APPROVAL"), timeout=STATE_TIMEOUT_MS)
    gate = page.wait_for_selector('.gate[data-gate-id="hitl-gate-build"]', timeout=STATE_TIMEOUT_MS)
    assert "Ship the build?" in gate.text_content()
    assert page.get_attribute(node("gated-dag", "ship"), "data-state") == "PENDING"
    page.click('button[data-action="approve"][data-gate-id="hitl-gate-build"]')
    page.wait_for_selector(node("gated-dag", "hitl-gate-build", "COMPLETED"), timeout=STATE_TIMEOUT_MS)
    page.wait_for_selector(node("gated-dag", "ship", "COMPLETED"), timeout=STATE_TIMEOUT_MS)
    page.wait_for_selector('.gate[data-gate-id="hitl-gate-build"]', state="detached", timeout=STATE_TIMEOUT_MS)
    assert client.get_job_status("ship") == "COMPLETED"


def counts_settle(page, completed: int) -> None:
    """The sidebar follows the master's stats once the jobs are done: counts and free slots."""
    page.wait_for_function(f"document.querySelector('#count-COMPLETED').textContent === '{completed}'",
                           timeout=STATE_TIMEOUT_MS)
    for state in ("PENDING", "QUEUED", "RUNNING", "WAITING_APPROVAL"):
        assert page.text_content(f"#count-{state}") == "0", state
    page.wait_for_selector('.worker[data-worker="cpu-1"][data-used="0"]', timeout=STATE_TIMEOUT_MS)
    page.wait_for_selector('.worker[data-worker="gpu-1"][data-used="0"]', timeout=STATE_TIMEOUT_MS)


def save_screenshot(page, tmp_path) -> None:
    path = tmp_path / "dashboard.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 10_000
    artifacts = os.environ.get("TITAN_TEST_ARTIFACTS")
    if artifacts:
        os.makedirs(artifacts, exist_ok=True)
        shutil.copy(path, os.path.join(artifacts, "dashboard.png"))
