"""The `titan` command against a real cluster, run as a user runs it: a subprocess whose output is a pipe."""

from __future__ import annotations

import itertools
import os
import pty
import re
import select
import shlex
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from titan.cluster import WorkerSpec, free_port_block
from titan.core.errors import RequestRejected
from titan_sdk import TitanJob

from tests.conftest import TITAN, finish, start_process, wait_until

COMMANDS = ["submit", "status", "logs", "cancel", "retry", "store", "events", "workers", "top", "run", "approve", "keys",
            "artifact", "agent-run", "master", "worker", "completion"]


def titan(cluster, *args, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([TITAN, *args], capture_output=True, text=True, timeout=timeout,
                          env=cluster_env(cluster), stdin=subprocess.DEVNULL)


def cluster_env(cluster) -> dict:
    return {**os.environ, "TITAN_HOST": cluster.host, "TITAN_PORT": str(cluster.port)}


def no_traceback(result) -> bool:
    return "Traceback" not in result.stderr


# ----------------------------------------------------------------- submit, status

def test_submit_wait_exits_0_when_the_job_completes(cluster, script):
    ok = script("ok.py", "import sys; print('args', sys.argv[1:])")
    result = titan(cluster, "submit", ok, "--id", "fine", "--args", "--lr 0.1", "--wait")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[:2] == ["submitted fine", "fine COMPLETED"]
    assert "1 of 1 jobs completed" in result.stdout
    logs = titan(cluster, "logs", "fine")
    assert logs.returncode == 0 and logs.stdout == "args ['--lr', '0.1']\n"


def test_submit_wait_exits_1_and_says_why_when_the_job_fails(cluster, script):
    bad = script("bad.py", "raise SystemExit(3)")
    result = titan(cluster, "submit", bad, "--id", "broken", "--wait")
    assert result.returncode == 1 and no_traceback(result)
    assert "broken FAILED" in result.stdout and "0 of 1 jobs completed" in result.stdout
    assert "broken FAILED: exit code 3" in result.stderr


def run_in_terminal(cluster, *args, timeout: float = 60) -> tuple:
    """(exit code, what it wrote) for the command run with a pseudo-terminal as its output, as rich sees
    a person's terminal."""
    controller, terminal = pty.openpty()
    env = {**cluster_env(cluster), "COLUMNS": "100", "LINES": "40", "TERM": "xterm"}
    process = subprocess.Popen([TITAN, *args], stdout=terminal, stderr=terminal, stdin=subprocess.DEVNULL,
                               env=env, start_new_session=True)
    os.close(terminal)
    output, deadline = b"", time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if select.select([controller], [], [], 0.1)[0]:
                try:
                    output += os.read(controller, 65536)
                except OSError:          # the terminal closed: the command ended
                    break
            elif process.poll() is not None:
                break
        return process.wait(timeout=max(1.0, deadline - time.monotonic())), output.decode(errors="replace")
    finally:
        os.close(controller)
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def test_submit_wait_on_a_terminal_shows_a_progress_bar(cluster, script):
    code, output = run_in_terminal(cluster, "submit", script("ok.py", "print('ok')"), "--id", "shown", "--wait")
    assert code == 0, output
    assert "━" in output and "1/1" in output and "COMPLETED 1" in output, output
    assert "1 of 1 jobs completed" in output


def test_submit_routes_by_requirement_and_returns_at_once_without_wait(cluster, client, script):
    ok = script("ok.py", "print('ok')")
    result = titan(cluster, "submit", ok, "--requirement", "GPU", "--priority", "5")
    assert result.returncode == 0, result.stderr
    job_id = result.stdout.split()[-1]
    assert job_id == "ok"
    assert client.wait(job_id, timeout=30) == "COMPLETED"
    assert client.job_info(job_id)["worker"] == "gpu-1" and client.job_info(job_id)["priority"] == 5


def test_status_of_a_job_a_dag_and_the_cluster(cluster, client, script):
    ok, bad = script("ok.py", "print('ok')"), script("bad.py", "raise SystemExit(2)")
    client.submit_dag("pipe", [TitanJob("first", ok), TitanJob("second", bad, parents=["first"]),
                               TitanJob("third", ok, parents=["second"])])
    client.wait(["first", "second", "third"], timeout=30)

    job = titan(cluster, "status", "second")
    assert job.returncode == 0, job.stderr
    fields = dict(line.split(": ", 1) for line in job.stdout.splitlines())
    assert fields["state"] == "FAILED" and fields["dag"] == "pipe" and fields["exit_code"] == "2"
    assert fields["parents"] == "first" and fields["reason"] == "exit code 2"

    dag = titan(cluster, "status", "pipe")
    assert dag.returncode == 0, dag.stderr
    lines = dag.stdout.splitlines()
    assert lines[0] == "dag pipe: finished; 1 CANCELLED, 1 COMPLETED, 1 FAILED"
    rows = {line.split()[0]: line.split(maxsplit=5) for line in lines[2:]}
    assert lines[1].split() == ["JOB", "STATE", "WORKER", "ATTEMPT", "EXIT", "REASON"]
    assert rows["first"][1] == "COMPLETED" and rows["second"][1:5] == ["FAILED", rows["second"][2], "1", "2"]
    assert rows["third"][1] == "CANCELLED" and rows["third"][5] == "parent 'second' FAILED"

    summary = titan(cluster, "status")
    assert summary.returncode == 0, summary.stderr
    counts = section(summary.stdout, "jobs by state")
    assert counts["COMPLETED"] == "1" and counts["FAILED"] == "1" and counts["CANCELLED"] == "1"
    assert section(summary.stdout, "cluster")["WORKERS"] == "2"

    missing = titan(cluster, "status", "nosuch")
    assert missing.returncode == 1 and missing.stderr == "titan status: no job or DAG named 'nosuch' on this master\n"


def section(output: str, title: str) -> dict:
    """A one-row section of plain output as {COLUMN: value}."""
    lines = output.splitlines()
    start = lines.index(f"# {title}")
    return dict(zip(lines[start + 1].split(), lines[start + 2].split()))


# ----------------------------------------------------------------- logs

def test_logs_follow_prints_lines_as_they_come_and_ends_with_the_job(cluster, client, script, tmp_path):
    go_on = tmp_path / "go_on"
    chatty = script("chatty.py", f"""
        import os, time
        for i in range(3):
            print("line", i, flush=True)
            time.sleep(0.3)
        while not os.path.exists({str(go_on)!r}):
            time.sleep(0.05)
        for i in range(3, 6):
            print("line", i, flush=True)
            time.sleep(0.1)
    """)
    client.submit_job(TitanJob("chatty", chatty))
    follower = start_process([TITAN, "logs", "-f", "chatty"], env=cluster_env(cluster))
    try:
        early = [follower.stdout.readline() for _ in range(3)]
        assert early == ["line 0\n", "line 1\n", "line 2\n"]
        assert client.get_job_status("chatty") == "RUNNING", "the lines came while the job ran"
        go_on.touch()
    finally:
        out, err = finish(follower)
    assert follower.returncode == 0, err
    assert out == "".join(f"line {i}\n" for i in range(3, 6)), "the rest, in order, once each"
    assert client.get_job_status("chatty") == "COMPLETED"


def test_logs_follow_exits_1_for_a_job_that_did_not_complete(cluster, client, script):
    client.submit_job(TitanJob("doomed", script("doomed.py", "print('trying'); raise SystemExit(4)")))
    result = titan(cluster, "logs", "-f", "doomed")
    assert result.returncode == 1 and result.stdout == "trying\n"
    assert result.stderr == "titan logs: job doomed FAILED: exit code 4\n"


def test_reading_logs_by_offset_refuses_a_negative_offset(client, script):
    client.submit_job(TitanJob("said", script("said.py", "print('a'); print('b')")))
    assert client.wait("said", timeout=30) == "COMPLETED"
    assert client.read_logs("said") == {"text": "a\nb\n", "offset": 4, "state": "COMPLETED"}
    assert client.read_logs("said", since=2) == {"text": "b\n", "offset": 4, "state": "COMPLETED"}
    assert client.fetch_logs("said") == "a\nb\n", "the original reply is unchanged"
    with pytest.raises(RequestRejected, match="'since' must be >= 0"):
        client.read_logs("said", since=-1)


def test_logs_of_an_unknown_job_is_one_line(cluster):
    result = titan(cluster, "logs", "-f", "ghost")
    assert result.returncode == 1 and result.stderr == "titan logs: no job 'ghost' on this master\n"


# ----------------------------------------------------------------- cancel, store

def test_cancel_a_job_and_a_dag(cluster, client, script):
    forever = script("forever.py", "import time\nwhile True: time.sleep(0.1)")
    client.submit_job(TitanJob("stuck", forever))
    wait_until(lambda: client.get_job_status("stuck") == "RUNNING", 30, "stuck to run")
    result = titan(cluster, "cancel", "stuck")
    assert result.returncode == 0 and result.stdout == "stuck: CANCELLED\n", result.stderr
    assert client.wait("stuck", timeout=30) == "CANCELLED"

    client.submit_dag("slow_dag", [TitanJob("s1", forever), TitanJob("s2", forever, parents=["s1"])])
    dag = titan(cluster, "cancel", "--dag", "slow_dag")
    assert dag.returncode == 0, dag.stderr
    assert dag.stdout.splitlines()[0] == "dag slow_dag: finished; 2 CANCELLED"
    assert client.wait(["s1", "s2"], timeout=30) == {"s1": "CANCELLED", "s2": "CANCELLED"}


def test_retry_a_job_and_a_dag(cluster, client, script, tmp_path):
    marker = tmp_path / "tried"
    once = script("once.py", f"import os, sys\nif not os.path.exists({str(marker)!r}):\n"
                             f"    open({str(marker)!r}, 'w').close(); sys.exit(3)\n")
    client.submit_dag("fix_me", [TitanJob("flaky", once), TitanJob("after", once, parents=["flaky"])])
    assert client.wait(["flaky", "after"], timeout=30) == {"flaky": "FAILED", "after": "CANCELLED"}
    alone = titan(cluster, "retry", "after")   # its parent is still FAILED: cancelled again, as it should be
    assert alone.returncode == 0 and alone.stdout.startswith("after: "), alone.stderr
    assert client.wait("after", timeout=30) == "CANCELLED"
    dag = titan(cluster, "retry", "--dag", "fix_me")
    assert dag.returncode == 0 and dag.stdout.startswith("dag fix_me:"), dag.stderr
    assert client.wait(["flaky", "after"], timeout=30) == {"flaky": "COMPLETED", "after": "COMPLETED"}
    refused = titan(cluster, "retry", "after")
    assert refused.returncode != 0 and "only a FAILED or CANCELLED job" in refused.stderr


def test_store_round_trip(cluster, client):
    assert titan(cluster, "store", "put", "model/best", "v2 final").stdout == "OK\n"
    assert titan(cluster, "store", "get", "model/best").stdout == "v2 final\n"
    assert titan(cluster, "store", "incr", "model/runs").stdout == "1\n"
    assert titan(cluster, "store", "incr", "model/runs", "--by", "4").stdout == "5\n"
    client.store_put("other", "x")
    assert titan(cluster, "store", "keys", "model/").stdout == "model/best\nmodel/runs\n"
    assert titan(cluster, "store", "keys").stdout.split() == ["model/best", "model/runs", "other"]
    assert titan(cluster, "store", "delete", "model/best").stdout == "1\n"
    assert client.store_get("model/best") is None
    missing = titan(cluster, "store", "get", "model/best")
    assert missing.returncode == 1 and missing.stderr == "titan store: no key 'model/best' in TitanStore\n"


# ----------------------------------------------------------------- events, workers, top

def test_events_count_prints_that_many_lines_with_topics(cluster, client, script):
    ok = script("ok.py", "print('ok')")
    watcher = start_process([TITAN, "events", "--topic", "job.", "--count", "6", "--timeout", "40"],
                            env=cluster_env(cluster))
    try:
        for i in range(200):          # it subscribes at some point: keep events coming until it has enough
            if watcher.poll() is not None:
                break
            client.submit_job(TitanJob(f"e{i}", ok))
            time.sleep(0.2)
    finally:
        out, err = finish(watcher)
    assert watcher.returncode == 0, err
    lines = out.splitlines()
    assert len(lines) == 6
    parsed = [shlex.split(line) for line in lines]
    assert all(fields[2].startswith("job.") for fields in parsed)
    numbers = [int(fields[1].lstrip("#")) for fields in parsed]
    assert numbers == sorted(numbers) and len(set(numbers)) == 6
    facts = dict(field.split("=", 1) for field in parsed[0][3:])
    assert facts["state"] == parsed[0][2].split(".")[1] and facts["job_id"].startswith("e")


def test_workers_lists_both_workers_with_capabilities(cluster):
    result = titan(cluster, "workers")
    assert result.returncode == 0, result.stderr
    header, *rows = result.stdout.splitlines()[1:]
    assert header.split() == ["NAME", "CAPABILITIES", "SLOTS", "LOAD", "RUNNING", "SERVICES", "HEARTBEAT"]
    table = {row.split()[0]: row.split() for row in rows}
    assert table["cpu-1"][1:6] == ["GENERAL", "2", "0.00", "-", "-"]
    assert table["gpu-1"][1:3] == ["GENERAL,GPU", "2"]
    age = float(table["gpu-1"][6].removesuffix("s_ago"))
    assert 0 <= age < 10


def test_workers_shows_a_service_with_its_port(cluster, client, script):
    port = free_port_block("127.0.0.1", 1)
    service = script("echo_service.py", """
        import socket, sys
        server = socket.create_server(("127.0.0.1", int(sys.argv[1])))
        while True:
            server.accept()[0].close()
        """)
    client.submit_job(TitanJob("svc", service, job_type="SERVICE", port=port, args=str(port)))
    try:
        wait_until(lambda: any(s["up"] for w in client.stats()["workers"] for s in w.get("services", [])), 30,
                   "the service to be up")
        result = titan(cluster, "workers")
        assert result.returncode == 0, result.stderr
        assert f"svc:{port}" in result.stdout and "(starting)" not in result.stdout
    finally:
        client.stop_service("svc")


def test_run_ships_a_project_pipeline_and_waits(cluster, tmp_path):
    folder = tmp_path / "shipped"
    (folder / "src").mkdir(parents=True)
    (folder / "src" / "helper.py").write_text("GREETING = 'hello from the project'\n")
    (folder / "src" / "step.py").write_text("import helper\nprint(helper.GREETING)\n")
    (folder / "pipeline.yaml").write_text("name: shipped-cli\nproject: true\n"
                                          "jobs:\n  - {id: step, file: src/step.py}\n")
    result = titan(cluster, "run", str(folder / "pipeline.yaml"), "--wait")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 of 1 jobs completed" in result.stdout


def test_top_once_renders_workers_and_queues(cluster, client, script):
    client.submit_job(TitanJob("needs_tpu", script("ok.py", "print('ok')"), requirement="TPU"))
    result = titan(cluster, "top", "--once")
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("=== titan top") == 1
    assert section(result.stdout, "ready to run, by requirement") == {"TPU": "1"}
    assert section(result.stdout, "jobs by state")["QUEUED"] == "1"
    assert {"cpu-1", "gpu-1"} <= {line.split()[0] for line in result.stdout.splitlines() if line.strip()}


def test_top_on_a_terminal_draws_tables(cluster):
    code, output = run_in_terminal(cluster, "top", "--once")
    assert code == 0, output
    assert "jobs by state:" in output and "─" in output, output
    assert "cpu-1" in output and "GENERAL,GPU" in output


# `titan top`'s interval in the test below: long against how fast events arrive, so a frame before it
# can only have come from events; the test ends at that frame and never waits the interval out.
TOP_QUIET_INTERVAL_S = 20.0


def test_top_refreshes_from_events(cluster, client, script, quiet_interval_s=TOP_QUIET_INTERVAL_S):
    viewer = start_process([TITAN, "top", "--iterations", "2", "--interval", str(quiet_interval_s)],
                           env=cluster_env(cluster))
    try:
        wait_until(lambda: viewer.stdout.readline().startswith("=== titan top"), 30, "the first frame")
        time.sleep(0.5)   # its subscription is live before the first frame; give the frame time to print
        submitted = time.monotonic()
        client.submit_job(TitanJob("seen_by_top", script("ok.py", "print('ok')")))
    finally:
        out, err = finish(viewer, timeout=quiet_interval_s + 20)
    refreshed_after = time.monotonic() - submitted
    assert viewer.returncode == 0, err
    assert "job_id=seen_by_top" in out and out.count("=== titan top") == 1, out
    assert refreshed_after < quiet_interval_s / 2, f"the view waited {refreshed_after:.1f} s: the interval refreshed it, not events"


# ----------------------------------------------------------------- errors

@pytest.mark.parametrize("argv", [["submit"], ["logs"], ["bogus"], ["events", "--count", "0"],
                                  ["store", "get"], ["top", "--interval", "-1"], ["status", "a", "b"]])
def test_usage_errors_exit_2(argv):
    result = subprocess.run([TITAN, *argv], capture_output=True, text=True, timeout=30)
    assert result.returncode == 2 and "usage: titan" in result.stderr and no_traceback(result)


def test_a_missing_script_is_one_line_and_exit_2(tmp_path):
    missing = tmp_path / "nowhere.py"
    result = subprocess.run([TITAN, "submit", str(missing)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 2 and len(result.stderr.splitlines()) == 1
    assert result.stderr.startswith("titan submit: ") and str(missing) in result.stderr


def test_an_unreachable_master_is_one_line_and_exit_1():
    port = free_port_block("127.0.0.1", 4)
    started = time.monotonic()
    result = subprocess.run([TITAN, "status", "--port", str(port), "--timeout", "1"], capture_output=True,
                            text=True, timeout=30)
    assert result.returncode == 1 and result.stdout == ""
    assert len(result.stderr.splitlines()) == 1 and result.stderr.startswith("titan status: Titan master at ")
    assert "did not answer" in result.stderr and time.monotonic() - started < 15


def test_commands_reach_a_master_that_requires_keys(make_cluster, tmp_path):
    key_dir = str(tmp_path / "keys")
    for command in (["init", key_dir], ["add-client", "ops", "--keys", key_dir]):
        made = subprocess.run([TITAN, "keys", *command], capture_output=True, text=True, timeout=30)
        assert made.returncode == 0, made.stderr
    cluster = make_cluster(WorkerSpec("w1"), keys=key_dir)
    env = {k: v for k, v in cluster_env(cluster).items() if k != "TITAN_KEYS"}
    bundle = os.path.join(key_dir, "issued", "client-ops")
    allowed = subprocess.run([TITAN, "workers", "--keys", bundle], capture_output=True, text=True, timeout=30,
                             env=env)
    assert allowed.returncode == 0 and "w1" in allowed.stdout, allowed.stderr
    refused = subprocess.run([TITAN, "workers", "--timeout", "1.5"], capture_output=True, text=True, timeout=30,
                             env=env)
    assert refused.returncode == 1 and len(refused.stderr.splitlines()) == 1 and no_traceback(refused)


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command):
    result = subprocess.run([TITAN, command, "--help"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0 and result.stdout.startswith(f"usage: titan {command}")


# ----------------------------------------------------------------- lost events are noticed and healed

# More final-state events than a stopped reader's socket buffers and high-water marks hold (about 10,000
# of these on a Linux default set-up); long job ids make each event big, so fewer jobs are needed.
FLOOD_JOBS = 20_000
FLOOD_ID = "flood_" + "x" * 150 + "_{}"


def flood_cluster(make_cluster):
    return make_cluster(WorkerSpec("quick", slots=100, extra_args=("--executor", "null")),
                        WorkerSpec("slow", ["SLOW"], slots=1))


def flood(client, script, go_file) -> list:
    """A gate job that waits for go_file, and FLOOD_JOBS jobs after it that end at once when it does."""
    gate = script("gate.py", f"import os, time\nwhile not os.path.exists({str(go_file)!r}): time.sleep(0.05)")
    noop = script("noop.py", "pass")
    jobs = [TitanJob("gate", gate, requirement="SLOW"),
            *(TitanJob(FLOOD_ID.format(i), noop, parents=["gate"]) for i in range(FLOOD_JOBS))]
    return client.submit_dag("flood", jobs)


@pytest.mark.timeout(180)
def test_wait_heals_at_once_when_a_slow_reader_lost_events(make_cluster, script, tmp_path):
    cluster = flood_cluster(make_cluster)
    go = tmp_path / "go"
    with cluster.client(timeout=30) as client:
        client.submit_job(TitanJob("warm_up", script("noop.py", "pass")))
        client.wait("warm_up", timeout=30)
        job_ids = flood(client, script, go)
        waiter = start_process([sys.executable, "-c", textwrap.dedent(f"""
            from titan_sdk import TitanClient, client as sdk_client
            sdk_client.SNAPSHOT_EVERY_S = 600     # so only a noticed gap can end the wait in time
            with TitanClient(timeout=30) as client:
                client.wait("warm_up")          # its event subscription is live from here on
                print("waiting", flush=True)
                final = client.wait(["gate"] + [{FLOOD_ID!r}.format(i) for i in range({FLOOD_JOBS})], timeout=120)
                print(sorted(set(final.values())), len(final), client.event_gaps_healed, flush=True)
        """)], env=cluster_env(cluster))
        try:
            assert waiter.stdout.readline() == "waiting\n"
            time.sleep(1.0)                       # inside wait(), reading events
            os.kill(waiter.pid, signal.SIGSTOP)   # a reader too slow to keep up
            go.touch()
            client.wait(job_ids, timeout=120)
            os.kill(waiter.pid, signal.SIGCONT)
            # A gap shows only when a later event of the topic arrives: keep a few coming, as a live
            # cluster does (those sent while it still reads its full buffers are lost as well).
            for i in range(120):
                if waiter.poll() is not None:
                    break
                client.submit_job(TitanJob(f"later{i}", script("noop.py", "pass")))
                time.sleep(0.5)
        finally:
            if waiter.poll() is None:
                os.kill(waiter.pid, signal.SIGCONT)
            out, err = finish(waiter, timeout=60)
    assert waiter.returncode == 0, err
    states, count, gaps = out.rsplit(" ", 2)
    assert states == "['COMPLETED']" and int(count) == FLOOD_JOBS + 1
    assert int(gaps) >= 1, "the lost events were noticed by their numbers"


def submit_until_printed(client, script, prefix: str, out_file, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    for i in itertools.count():
        assert time.monotonic() < deadline, f"no {prefix} job's events were printed"
        client.submit_job(TitanJob(f"{prefix}{i}", script("noop.py", "pass")))
        time.sleep(0.3)
        if f"job_id={prefix}" in out_file.read_text():
            return


@pytest.mark.timeout(180)
def test_events_reports_lost_events(make_cluster, script, tmp_path):
    cluster = flood_cluster(make_cluster)
    go, out_file, err_file = tmp_path / "go", tmp_path / "events.out", tmp_path / "events.err"
    with cluster.client(timeout=30) as client, open(out_file, "w") as out, open(err_file, "w") as err:
        # files, not pipes: a full pipe would stall it for another reason than the one tested
        watcher = subprocess.Popen([TITAN, "events", "--topic", "job.", "--timeout", "90"], stdout=out,
                                   stderr=err, env=cluster_env(cluster), stdin=subprocess.DEVNULL,
                                   start_new_session=True)
        try:
            submit_until_printed(client, script, "first", out_file)   # it subscribes at some point
            job_ids = flood(client, script, go)
            os.kill(watcher.pid, signal.SIGSTOP)
            go.touch()
            client.wait(job_ids, timeout=120)
            seq_after_flood = client.ping()["seq"]
            os.kill(watcher.pid, signal.SIGCONT)
            submit_until_printed(client, script, "last", out_file)    # events sent while it catches up are lost too
        finally:
            if watcher.poll() is None:
                os.kill(watcher.pid, signal.SIGCONT)
                os.killpg(watcher.pid, signal.SIGINT)
            finish(watcher)
    assert watcher.returncode == 0
    notes = err_file.read_text().splitlines()
    losses = [re.fullmatch(r"titan events: (\d+) job\.[A-Z_]+ events? lost \(this reader was too slow\)", line)
              for line in notes]
    assert notes and all(losses), notes
    lost = sum(int(match.group(1)) for match in losses)
    printed = [int(line.split()[1].lstrip("#")) for line in out_file.read_text().splitlines()]
    assert printed == sorted(printed) and printed[-1] > seq_after_flood
    between = printed[-1] - printed[0] + 1 - len(printed)        # numbers never printed, any topic
    assert 0 < lost <= between


# ----------------------------------------------------------------- artifacts and agent runs

def test_artifact_put_then_get_gives_the_same_bytes(cluster, tmp_path):
    original = tmp_path / "model.bin"
    original.write_bytes(os.urandom(300_000))
    put = titan(cluster, "artifact", "put", str(original), "--name", "models/best.bin")
    assert put.returncode == 0 and put.stdout.strip() == "models/best.bin", put.stderr
    fetched = tmp_path / "back.bin"
    get = titan(cluster, "artifact", "get", "models/best.bin", str(fetched))
    assert get.returncode == 0 and get.stdout.strip() == str(fetched), get.stderr
    assert fetched.read_bytes() == original.read_bytes()
    missing = titan(cluster, "artifact", "get", "no/such/thing", str(tmp_path / "x"))
    assert missing.returncode == 1 and "no/such/thing" in missing.stderr and no_traceback(missing)


def test_agent_run_lists_its_dags_and_exits_0_once_they_finished(cluster, client, script):
    ok = script("ok.py", "print('ok')")
    client.submit_dag("plan-1", [TitanJob("p1", ok)], agent_run_id="run-42")
    client.submit_dag("plan-2", [TitanJob("p2", ok)], agent_run_id="run-42")
    assert client.wait(["p1", "p2"], timeout=30) == {"p1": "COMPLETED", "p2": "COMPLETED"}
    result = titan(cluster, "agent-run", "run-42")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "agent run run-42: 2 DAG(s), finished"
    assert [line.split()[1] for line in lines if line.startswith("dag ")] == ["plan-1:", "plan-2:"]
    unknown = titan(cluster, "agent-run", "run-none")
    assert unknown.returncode == 1 and "run-none" in unknown.stderr and no_traceback(unknown)


@pytest.mark.parametrize("command", [["events"], ["logs", "-f", "sleeper"], ["top", "--interval", "0.5"]],
                         ids=["events", "logs-follow", "top"])
def test_ctrl_c_stops_a_following_command_started_where_sigint_is_ignored(cluster, client, script, command):
    """As from `nohup titan events &` in a script: the shell starts background jobs with SIGINT ignored."""
    client.submit_job(TitanJob("sleeper", script("sleeper.py", "import time\nprint('up', flush=True)\ntime.sleep(60)")))
    wait_until(lambda: client.read_logs("sleeper")["text"], timeout=30, what="the sleeper to start")
    follower = start_process([TITAN, *command], env=cluster_env(cluster),
                             preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    try:
        nudge = script("nudge.py", "pass")
        for attempt in itertools.count():   # `titan events` prints only events after it subscribed
            if select.select([follower.stdout], [], [], 0.5)[0]:
                break
            assert attempt < 40, "the command printed nothing"
            if command == ["events"]:
                client.submit_job(TitanJob(f"nudge-{attempt}", nudge))
        assert follower.stdout.readline(), "it runs"
    finally:
        follower.send_signal(signal.SIGINT)
        out, err = finish(follower, timeout=10)
    assert follower.returncode in (0, 130) and "Traceback" not in err, (follower.returncode, err)
