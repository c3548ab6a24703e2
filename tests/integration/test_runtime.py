"""The core runtime end to end: real master and worker processes on loopback."""

from __future__ import annotations

import glob
import os
import shutil
import signal
import tempfile
import time
import uuid

import psutil
import pytest
import zmq

from titan.cluster import WorkerSpec
from titan.net import jobwire, protocol
from titan_sdk import InvalidDag, JobConflict, MasterUnreachable, TitanClient, TitanJob, UnknownJob

WAIT_S = 30


def test_two_job_dag_routes_by_capability(client, script):
    path = script("where.py", "import os; print(os.environ['TITAN_WORKER_ID'])")
    client.submit_dag("pipeline", [TitanJob("extract", path, priority=5),
                                   TitanJob("train", path, requirement="GPU", parents=["extract"])])
    assert client.wait(["extract", "train"], timeout=WAIT_S) == {"extract": "COMPLETED", "train": "COMPLETED"}
    assert client.fetch_logs("train").strip() == "gpu-1"
    assert client.fetch_logs("extract").strip() == "cpu-1"


def test_ten_job_fan_out_uses_every_worker(client, script):
    path = script("sleepy.py", "import time; time.sleep(0.3)")
    ids = client.submit_dag("fan", [TitanJob(f"deep_{i}", path) for i in range(10)])
    assert client.wait(ids, timeout=WAIT_S) == {job: "COMPLETED" for job in ids}
    assert {client.job_info(job)["worker"] for job in ids} == {"cpu-1", "gpu-1"}


def test_job_environment_arguments_and_workspace(client, script):
    path = script("env.py", """
        import os, sys
        keys = ["TITAN_HOST", "TITAN_PORT", "TITAN_JOB_ID", "TITAN_DAG_ID", "TITAN_ATTEMPT", "TITAN_WORKER_ID"]
        print({key: os.environ[key] for key in keys})
        print(sys.argv[1:])
        print(sorted(os.listdir(".")), os.getcwd() == os.environ["TITAN_DAG_DIR"])
        """)
    client.submit_dag("envdag", [TitanJob("env", path, args="--name 'two words' 3")])
    assert client.wait("env", timeout=WAIT_S) == "COMPLETED"
    env_line, argv_line, files_line = client.fetch_logs("env").splitlines()
    env = eval(env_line)
    assert env["TITAN_JOB_ID"] == "env" and env["TITAN_DAG_ID"] == "envdag" and env["TITAN_ATTEMPT"] == "1"
    assert (env["TITAN_HOST"], env["TITAN_PORT"]) == (client.host, str(client.port))
    assert env["TITAN_WORKER_ID"] in {"cpu-1", "gpu-1"}
    assert eval(argv_line) == ["--name", "two words", "3"]
    assert files_line == "[] True", "a DAG's job runs in the DAG's folder; its script is kept apart"


def test_shell_and_executable_scripts(client, script):
    shell = script("hello.sh", 'echo "bash says $1"\n')
    direct = script("direct.run", f"#!{os.path.realpath(os.sys.executable)}\nprint('ran directly')\n")
    client.submit_job(TitanJob("sh", shell, args="hi"))
    client.submit_job(TitanJob("direct", direct))
    assert client.wait(["sh", "direct"], timeout=WAIT_S) == {"sh": "COMPLETED", "direct": "COMPLETED"}
    assert client.fetch_logs("sh") == "bash says hi\n"
    assert client.fetch_logs("direct") == "ran directly\n"


def test_fetch_logs_has_both_streams_in_order(client, script):
    path = script("both.py", """
        import sys
        print("out 1", flush=True); print("err 1", file=sys.stderr, flush=True)
        print("out 2", flush=True); print("err 2", file=sys.stderr, flush=True)
        """)
    client.submit_job(TitanJob("both", path))
    assert client.wait("both", timeout=WAIT_S) == "COMPLETED"
    logs = client.fetch_logs("both")
    assert set(logs.splitlines()) == {"out 1", "err 1", "out 2", "err 2"}
    assert logs.index("out 1") < logs.index("out 2") and logs.index("err 1") < logs.index("err 2")


def test_logs_stream_while_the_job_runs(client, script, tmp_path):
    gate = tmp_path / "release"
    path = script("slow.py", f"""
        import os, time
        print("started", flush=True)
        while not os.path.exists({str(gate)!r}):
            time.sleep(0.05)
        print("finished", flush=True)
        """)
    client.submit_job(TitanJob("slow", path))
    deadline = time.monotonic() + WAIT_S
    while "started" not in client.fetch_logs("slow"):
        assert time.monotonic() < deadline, "no output reached the master while the job ran"
        time.sleep(0.05)
    assert client.get_job_status("slow") == "RUNNING"
    gate.write_text("go")
    assert client.wait("slow", timeout=WAIT_S) == "COMPLETED"
    assert client.fetch_logs("slow") == "started\nfinished\n"


def test_exit_codes_decide_completed_or_failed(client, script):
    client.submit_job(TitanJob("ok", script("ok.py", "pass")))
    client.submit_job(TitanJob("boom", script("boom.py", "raise SystemExit(3)")))
    client.submit_job(TitanJob("crash", script("crash.py", "raise ValueError('bad row 7')")))
    assert client.wait(["ok", "boom", "crash"], timeout=WAIT_S) == {
        "ok": "COMPLETED", "boom": "FAILED", "crash": "FAILED"}
    assert client.job_info("boom")["exit_code"] == 3
    assert "ValueError: bad row 7" in client.fetch_logs("crash")


def test_failing_parent_cancels_its_descendants(client, script):
    fail, ok = script("fail.py", "raise SystemExit(1)"), script("ok.py", "pass")
    client.submit_dag("broken", [TitanJob("root", fail), TitanJob("child", ok, parents=["root"]),
                                 TitanJob("grandchild", ok, parents=["child"]), TitanJob("other", ok)])
    final = client.wait(["root", "child", "grandchild", "other"], timeout=WAIT_S)
    assert final == {"root": "FAILED", "child": "CANCELLED", "grandchild": "CANCELLED", "other": "COMPLETED"}
    assert "'root'" in client.job_info("child")["reason"]
    assert client.fetch_logs("child") == ""


def test_job_submits_another_job_from_inside(client, script):
    child = script("child.py", "print('child ran')")
    parent = script("spawner.py", f"""
        from titan_sdk import TitanClient, TitanJob
        TitanClient().submit_job(TitanJob(job_id="spawned", filename={child!r}))
        print("spawned a child")
        """)
    client.submit_job(TitanJob("spawner", parent))
    assert client.wait("spawner", timeout=WAIT_S) == "COMPLETED"
    assert client.wait("spawned", timeout=WAIT_S) == "COMPLETED"
    assert client.fetch_logs("spawned") == "child ran\n"


def test_job_writes_store_and_child_reads_it(client, script):
    writer = script("writer.py", """
        from titan_sdk import TitanClient
        c = TitanClient()
        c.store_put("model|version", "v2 ✓ naïve")
        c.store_sadd("seen", "writer")
        print(c.store_incr("runs"))
        """)
    reader = script("reader.py", """
        from titan_sdk import TitanClient
        c = TitanClient()
        print(c.store_get("model|version"), c.store_smembers("seen"), c.store_incr("runs", by=10))
        """)
    client.submit_dag("store", [TitanJob("writer", writer, requirement="GPU"),
                                TitanJob("reader", reader, parents=["writer"])])
    assert client.wait(["writer", "reader"], timeout=WAIT_S) == {"writer": "COMPLETED", "reader": "COMPLETED"}
    assert client.fetch_logs("reader") == "v2 ✓ naïve ['writer'] 11\n"
    assert client.store_get("model") is None
    assert client.store_keys("mod") == ["model|version"]


def test_store_calls_from_the_sdk(client):
    assert client.store_put("k", "v") == "OK"
    assert client.store_get("k") == "v" and client.store_get("missing") is None
    assert (client.store_sadd("s", "a"), client.store_sadd("s", "a"), client.store_sadd("s", "b")) == (1, 0, 1)
    assert client.store_smembers("s") == ["a", "b"]
    assert [client.store_incr("n") for _ in range(3)] == [1, 2, 3]
    assert client.store_delete("k") == 1 and client.store_get("k") is None
    assert client.store_keys() == ["n", "s"]
    with pytest.raises(TypeError, match="TitanStore value"):
        client.store_put("k", {"not": "a string"})


def test_unplaceable_job_waits_with_a_reason_and_blocks_nobody(client, script):
    ok = script("ok.py", "pass")
    client.submit_job(TitanJob("needs_tpu", ok, requirement="TPU", priority=100))
    client.submit_job(TitanJob("plain", ok))
    assert client.wait("plain", timeout=WAIT_S) == "COMPLETED"
    info = client.job_info("needs_tpu")
    assert info["state"] == "QUEUED"
    assert "TPU" in info["reason"] and "GPU" in info["reason"]
    assert client.cancel("needs_tpu") == "CANCELLED"


def test_resubmitting_active_job_is_refused_and_ended_job_reruns(client, script):
    gate = script("hold.py", "import time; time.sleep(1.0); print('done')")
    client.submit_job(TitanJob("again", gate))
    with pytest.raises(JobConflict, match="again"):
        client.submit_job(TitanJob("again", gate))
    assert client.wait("again", timeout=WAIT_S) == "COMPLETED"
    client.submit_job(TitanJob("again", gate))
    assert client.get_job_status("again") in {"QUEUED", "RUNNING"}
    assert client.wait("again", timeout=WAIT_S) == "COMPLETED"
    assert client.fetch_logs("again") == "done\n"


def test_bad_dags_are_refused_whole(client, script):
    ok = script("ok.py", "pass")
    with pytest.raises(InvalidDag, match=r"cycle: (a -> b -> a|b -> a -> b)"):
        client.submit_dag("cyclic", [TitanJob("a", ok, parents=["b"]), TitanJob("b", ok, parents=["a"]),
                                     TitanJob("c", ok)])
    with pytest.raises(InvalidDag, match="unknown parent.*'ghost'"):
        client.submit_dag("dangling", [TitanJob("c", ok, parents=["ghost"])])
    with pytest.raises(UnknownJob):
        client.job_info("c")


def test_status_accepts_dag_prefix(client, script):
    client.submit_job(TitanJob("prefixed", script("ok.py", "pass")))
    assert client.wait("prefixed", timeout=WAIT_S) == "COMPLETED"
    assert client.get_job_status("DAG-prefixed") == "COMPLETED"


def test_priority_orders_ready_jobs(make_cluster, script):
    cluster = make_cluster(WorkerSpec("solo", slots=1))
    hold = script("hold.py", "import time; time.sleep(0.5)")
    record = script("record.py", """
        import os
        from titan_sdk import TitanClient
        c = TitanClient()
        c.store_put("order/" + os.environ["TITAN_JOB_ID"], str(c.store_incr("order")))
        """)
    with cluster.client() as client:
        client.submit_job(TitanJob("blocker", hold))
        for name, priority in [("low", 1), ("high", 9), ("mid", 5), ("low2", 1)]:
            client.submit_job(TitanJob(name, record, priority=priority))
        client.wait(["blocker", "low", "high", "mid", "low2"], timeout=WAIT_S)
        order = {job: int(client.store_get(f"order/{job}")) for job in ("low", "high", "mid", "low2")}
    assert sorted(order, key=order.get) == ["high", "mid", "low", "low2"]


def test_cancel_kills_the_whole_process_tree_and_descendants(client, script, tmp_path):
    pid_file = tmp_path / "grandchild.pid"
    path = script("tree.py", f"""
        import subprocess, sys, time
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        open({str(pid_file)!r}, "w").write(str(child.pid))
        print("started", flush=True)
        time.sleep(60)
        """)
    ok = script("ok.py", "pass")
    client.submit_dag("cancel_me", [TitanJob("tree", path), TitanJob("after", ok, parents=["tree"])])
    deadline = time.monotonic() + WAIT_S
    while not pid_file.exists() or "started" not in client.fetch_logs("tree"):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    grandchild = psutil.Process(int(pid_file.read_text()))
    assert client.cancel("tree") == "CANCELLED"
    assert client.get_job_status("after") == "CANCELLED"
    gone, alive = psutil.wait_procs([grandchild], timeout=10)
    assert not alive, "the job's own child process survived the cancel"


def test_killed_worker_job_runs_elsewhere(make_cluster, script, tmp_path):
    cluster = make_cluster(WorkerSpec("doomed", slots=1), WorkerSpec("spare", slots=1))
    marker = tmp_path / "first_attempt.pid"
    path = script("resilient.py", f"""
        import os, time
        if os.environ["TITAN_ATTEMPT"] == "1":
            with open({str(marker)!r}, "w") as f:
                f.write(str(os.getpid()))
            time.sleep(60)
        print("done on", os.environ["TITAN_WORKER_ID"])
        """)
    with cluster.client() as client:
        client.submit_job(TitanJob("resilient", path))
        deadline = time.monotonic() + WAIT_S
        while client.get_job_status("resilient") != "RUNNING" or not marker.exists():
            assert time.monotonic() < deadline
            time.sleep(0.05)
        first = client.job_info("resilient")["worker"]
        cluster.worker_processes[first].send_signal(signal.SIGKILL)
        assert client.wait("resilient", timeout=WAIT_S) == "COMPLETED"
        info = client.job_info("resilient")
    assert info["attempt"] == 2 and info["worker"] != first
    # A SIGKILLed worker takes its jobs with it (its fork server kills them as it goes): the first
    # attempt is not running beside the second. The dead worker's workspace is left: remove it.
    first_attempt = psutil.Process(int(marker.read_text())) if psutil.pid_exists(int(marker.read_text())) else None
    if first_attempt is not None:
        _, alive = psutil.wait_procs([first_attempt], timeout=10)
        for process in alive:
            process.kill()
        assert not alive, "the first attempt outlived its SIGKILLed worker"
    for workspace in glob.glob(os.path.join(tempfile.gettempdir(), f"titan-worker-{cluster.worker_processes[first].pid}-*")):
        shutil.rmtree(workspace, ignore_errors=True)


def test_client_timeout_names_the_address():
    client = TitanClient(host="127.0.0.1", port=1, timeout=0.5)
    started = time.monotonic()
    with pytest.raises(MasterUnreachable, match="127.0.0.1:1"):
        client.ping()
    assert time.monotonic() - started < 3
    client.close()


def test_retried_request_is_answered_not_repeated(cluster, script):
    job = TitanJob("once", script("ok.py", "pass")).to_spec()
    request = protocol.encode({"op": "submit", "rid": uuid.uuid4().hex, "dag": None,
                               "jobs": [jobwire.job_to_wire(job)]})
    ctx = zmq.Context()
    dealer = ctx.socket(zmq.DEALER)
    dealer.linger = 0
    dealer.connect(f"tcp://{cluster.host}:{cluster.port}")
    try:
        replies = []
        for _ in range(2):
            dealer.send(request)
            assert dealer.poll(10_000), "no reply"
            replies.append(protocol.decode_reply(dealer.recv()))
    finally:
        ctx.destroy(linger=0)
    assert replies[0] == replies[1] and replies[0]["ok"], replies


def test_two_clients_reusing_a_request_id_each_get_their_own_answer(cluster, script):
    """The reply cache is per client: the same request id from another client is another request."""
    ctx = zmq.Context()
    ctx.linger = 0
    clients, store = [], []
    try:
        for _ in range(2):
            clients.append(ctx.socket(zmq.DEALER))
            clients[-1].connect(f"tcp://{cluster.host}:{cluster.port}")
            store.append(ctx.socket(zmq.DEALER))
            store[-1].connect(f"tcp://{cluster.host}:{cluster.port + 3}")
        submitted, counted = [], []
        for n, (client_socket, store_socket) in enumerate(zip(clients, store)):
            job = TitanJob(f"reused-{n}", script("ok.py", "pass")).to_spec()
            client_socket.send(protocol.encode({"op": "submit", "rid": "1", "jobs": [jobwire.job_to_wire(job)]}))
            store_socket.send_multipart([b"", protocol.encode({"op": "incr", "rid": "1", "key": "n", "by": 1})])
            for socket, answers in ((client_socket, submitted), (store_socket, counted)):
                assert socket.poll(10_000), "no reply"
                answers.append(protocol.decode_reply(socket.recv_multipart()[-1])["result"])
    finally:
        ctx.destroy(linger=0)
    assert [result["jobs"] for result in submitted] == [["reused-0"], ["reused-1"]], submitted
    assert counted == [1, 2], "the second client's increment was carried out"


def test_events_describe_each_transition(client, script):
    ok = script("ok.py", "pass")
    with client.events(topics=["job."], timeout=10) as events:   # live once events() returns
        client.submit_dag("watched", [TitanJob("watched_job", ok)])
        seen = []
        for event in events:
            assert event["job_id"] == "watched_job", "nothing else runs on this cluster"
            seen.append(event)
            if event["state"] == "COMPLETED":
                break
    assert [e["topic"] for e in seen] == ["job.PENDING", "job.QUEUED", "job.RUNNING", "job.COMPLETED"]
    assert all(a["seq"] + 1 == b["seq"] for a, b in zip(seen, seen[1:]))
    done = seen[-1]
    assert done["dag"] == "watched" and done["exit_code"] == 0 and done["attempt"] == 1
    assert done["worker"] in {"cpu-1", "gpu-1"} and isinstance(done["ts"], float)


def test_worker_events_on_join_and_leave(make_cluster):
    cluster = make_cluster(WorkerSpec("first", slots=1))
    with cluster.client() as client, client.events(topics=["worker."], timeout=10) as events:
        cluster.start_worker(WorkerSpec("second", ["GPU"], slots=3))
        joined = next(events)
        cluster.worker_processes["second"].terminate()
        left = next(events)
    assert (joined["topic"], joined["worker"], joined["capabilities"], joined["slots"]) == (
        "worker.joined", "second", ["GENERAL", "GPU"], 3)
    assert (left["topic"], left["worker"], left["reason"]) == ("worker.left", "second", "it shut down")


def test_events_need_a_running_master():
    with TitanClient(host="127.0.0.1", port=1, timeout=0.3) as client:
        with pytest.raises(MasterUnreachable, match="event stream at tcp://127.0.0.1:3"):
            client.events()


def test_wait_is_not_fooled_by_an_earlier_run_of_the_same_job(client, script):
    """The client keeps its event subscription between waits; an end of an earlier run of a job, still
    queued there, must not end a wait on its new run."""
    quick, slow = script("quick.py", "print('quick')"), script("slow.py", "import time; time.sleep(1.0); print('run 2')")
    client.submit_job(TitanJob("rerun", script("half.py", "import time; time.sleep(0.3); print('run 1')")))
    client.submit_job(TitanJob("other", quick))
    assert client.wait("other", timeout=WAIT_S) == "COMPLETED"          # 'rerun' ends after this wait
    deadline = time.monotonic() + WAIT_S
    while client.get_job_status("rerun") != "COMPLETED":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    client.submit_job(TitanJob("rerun", slow))
    started = time.monotonic()
    assert client.wait("rerun", timeout=WAIT_S) == "COMPLETED"
    assert time.monotonic() - started >= 0.9, "wait returned on the earlier run's end"
    assert client.fetch_logs("rerun") == "run 2\n"
