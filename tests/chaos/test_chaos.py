"""Chaos: real masters and workers on loopback, killed (SIGKILL), frozen (SIGSTOP) and restarted mid-work.

Each test checks what a user would: every job ends in the state it should, ran at most as often as a
crash can explain, in dependency order, and nothing is left running. A SIGKILLed worker cannot stop its
jobs, so job scripts that outlive one write their pid to a file and the test ends them by that pid; the
`chaos_cluster` fixture also fails a test that leaves any process of its clusters' jobs behind.
"""

from __future__ import annotations

import glob
import os
import random
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from typing import Callable, Dict, Iterable, List

import psutil
import pytest
import zmq

from titan.cluster import PORTS_PER_MASTER, LocalCluster, WorkerSpec, free_port_block
from titan.defaults import MAX_STORE_VALUE_BYTES
from titan.net import jobwire, protocol
from titan_sdk import MasterUnreachable, TitanClient, TitanJob
from tests.conftest import wait_until

WAIT_S = 30
RETRY_BACKOFF = ["--retry-backoff", "0.1"]

# A job script's first lines: record this process's pid (atomically, so a reader never sees half of it).
PY_WRITE_PID = """
    import os
    def write_pid(path, pid):
        with open(path + ".tmp", "w") as handle:
            handle.write(str(pid))
        os.replace(path + ".tmp", path)
    """


# ----------------------------------------------------------------------------- processes

def job_processes(ports: Iterable[int]) -> List[psutil.Process]:
    """Live processes of jobs dispatched by the masters on `ports`: a worker gives each job it starts as
    a new process TITAN_PORT; a job forked from a fork server (and a pool member, and the server) shows
    its worker's command line, with `--master HOST:PORT`, as forked processes do."""
    wanted = {str(port) for port in ports}
    found = []
    for process in psutil.process_iter():
        try:
            if process.pid != os.getpid() and process.status() != psutil.STATUS_ZOMBIE and (
                    _started_by_worker(process, wanted) or _forked_by_worker(process, wanted)):
                found.append(process)
        except (psutil.Error, OSError):
            continue
    return found


def _started_by_worker(process: psutil.Process, ports: set) -> bool:
    env = process.environ()
    return env.get("TITAN_PORT") in ports and "TITAN_JOB_ID" in env


def _forked_by_worker(process: psutil.Process, ports: set) -> bool:
    """A fork of a worker of these masters (its command line); never the worker itself (the test's child)."""
    command = process.cmdline()
    if "titan.worker" not in command or "--master" not in command:
        return False
    master = command[command.index("--master") + 1] if command.index("--master") + 1 < len(command) else ""
    if master.rpartition(":")[2] not in ports:
        return False
    return process.ppid() != os.getpid()


def kill_job_process(pid: int, port: int) -> None:
    """End one job process by pid, only if it really is a job of the master on `port`."""
    try:
        process = psutil.Process(pid)
        if process.environ().get("TITAN_PORT") == str(port):
            process.kill()
            process.wait(5)
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        pass


def is_gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def wait_gone(pids: Iterable[int], timeout: float = 10.0) -> List[int]:
    """Wait until every pid has exited; returns the ones still alive after `timeout`."""
    deadline = time.monotonic() + timeout
    alive = list(pids)
    while alive and time.monotonic() < deadline:
        alive = [pid for pid in alive if not is_gone(pid)]
        time.sleep(0.05)
    return alive


def kill9(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGKILL)
    process.wait(10)


def kill9_worker(cluster: LocalCluster, name: str) -> None:
    """SIGKILL a worker and remove the temporary work root it had no chance to remove."""
    process = cluster.worker_processes[name]
    kill9(process)
    for root in glob.glob(os.path.join(tempfile.gettempdir(), f"titan-worker-{process.pid}-*")):
        shutil.rmtree(root, ignore_errors=True)


def read_pid(path) -> int:
    return int(open(path).read())


def master_log(cluster: LocalCluster) -> str:
    with open(os.path.join(cluster.log_dir, "master.log"), errors="replace") as handle:
        return handle.read()


# ----------------------------------------------------------------------------- waiting

def next_event(events, match: Callable[[dict], bool], timeout: float, seen: List[dict]) -> dict:
    """Read events (keeping every one in `seen`) until one matches."""
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"no matching event within {timeout:g}s; saw {[e['topic'] for e in seen[-20:]]}"
        event = events.get(remaining)
        if event is not None:
            seen.append(event)
            if match(event):
                return event


def drain_events(events, seen: List[dict], quiet: float = 0.5) -> None:
    while True:
        event = events.get(quiet)
        if event is None:
            return
        seen.append(event)


def in_thread(results: dict, name: str, action: Callable[[], object]) -> threading.Thread:
    """Run `action` in a daemon thread; its return value, or the exception it raised, lands in results[name]."""
    def run():
        try:
            results[name] = action()
        except Exception as exc:   # the test's assertions report it
            results[name] = exc
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def lines(path) -> List[str]:
    return open(path).read().splitlines() if os.path.exists(path) else []


# ----------------------------------------------------------------------------- fixtures

@pytest.fixture
def chaos_cluster(make_cluster):
    """make_cluster, and at teardown: no job process of these clusters may be left (by TITAN_PORT)."""
    made: List[LocalCluster] = []

    def make(*workers: WorkerSpec, **options) -> LocalCluster:
        cluster = make_cluster(*workers, **options)
        made.append(cluster)
        return cluster

    yield make
    for cluster in made:
        cluster.stop()
    ports = {cluster.port for cluster in made}
    deadline = time.monotonic() + 5
    while job_processes(ports) and time.monotonic() < deadline:
        time.sleep(0.05)
    leftovers = job_processes(ports)
    described = [process.cmdline() for process in leftovers]
    for process in leftovers:
        process.kill()
    assert not leftovers, f"job processes left behind: {described}"


# ----------------------------------------------------------------------------- 1. worker SIGKILL

def test_sigkilled_worker_job_completes_on_another_worker(chaos_cluster, script, tmp_path):
    cluster = chaos_cluster(WorkerSpec("doomed", slots=1), WorkerSpec("spare", slots=1))
    pid_file = str(tmp_path / "attempt1.pid")
    path = script("victim.py", PY_WRITE_PID + f"""
    import time
    if os.environ["TITAN_ATTEMPT"] == "1":
        write_pid({pid_file!r}, os.getpid())
        time.sleep(60)
    print("done on", os.environ["TITAN_WORKER_ID"], "attempt", os.environ["TITAN_ATTEMPT"])
    """)
    with cluster.client() as client:
        client.submit_job(TitanJob("victim", path))
        wait_until(lambda: os.path.exists(pid_file), WAIT_S, "attempt 1 to start")
        first = client.job_info("victim")["worker"]
        try:
            kill9_worker(cluster, first)
            assert client.wait("victim", timeout=WAIT_S) == "COMPLETED"
        finally:
            kill_job_process(read_pid(pid_file), cluster.port)   # the orphan its worker could not stop
        info = client.job_info("victim")
        logs = client.fetch_logs("victim")
    assert info["attempt"] == 2 and info["worker"] != first, info
    assert logs.endswith(f"done on {info['worker']} attempt 2\n"), logs


# ----------------------------------------------------------------------------- 2. worker SIGSTOP

def test_sigstopped_worker_is_declared_dead_and_its_late_result_is_ignored(chaos_cluster, script, tmp_path):
    cluster = chaos_cluster(WorkerSpec("frozen", slots=1), WorkerSpec("spare", slots=1))
    pid_file, gate, side = (str(tmp_path / name) for name in ("attempt1.pid", "gate", "side_effect.txt"))
    path = script("stoppable.py", PY_WRITE_PID + f"""
    import time
    attempt = os.environ["TITAN_ATTEMPT"]
    if attempt == "1":
        write_pid({pid_file!r}, os.getpid())
        while not os.path.exists({gate!r}):
            time.sleep(0.05)
    with open({side!r}, "a") as handle:
        handle.write(f"attempt {{attempt}} on {{os.environ['TITAN_WORKER_ID']}}\\n")
    """)
    seen: List[dict] = []
    with cluster.client() as client, client.events(topics=["job.", "worker."]) as events:
        client.submit_job(TitanJob("stoppable", path))
        wait_until(lambda: os.path.exists(pid_file), WAIT_S, "attempt 1 to start")
        first = client.job_info("stoppable")["worker"]
        worker = cluster.worker_processes[first]
        worker.send_signal(signal.SIGSTOP)
        try:
            dead = next_event(events, lambda e: e["topic"] == "worker.dead" and e["worker"] == first, 15, seen)
            assert dead["running"] == ["stoppable"], dead
            assert client.wait("stoppable", timeout=WAIT_S) == "COMPLETED"
            rerun = client.job_info("stoppable")
            assert rerun["attempt"] == 2 and rerun["worker"] != first, rerun
            open(gate, "w").close()          # attempt 1 now ends while its worker is still frozen
            assert not wait_gone([read_pid(pid_file)]), "attempt 1 did not end after its gate opened"
        finally:
            worker.send_signal(signal.SIGCONT)
        next_event(events, lambda e: e["topic"] == "worker.joined" and e["worker"] == first, 15, seen)
        wait_until(lambda: "ignored a stale result" in master_log(cluster)
                   or "no longer its own" in master_log(cluster), 10, "the master to refuse the late result")
        drain_events(events, seen)
        final = client.job_info("stoppable")
        workers = [w["name"] for w in client.stats()["workers"]]
    completed = [e for e in seen if e["topic"] == "job.COMPLETED" and e["job_id"] == "stoppable"]
    assert len(completed) == 1 and completed[0]["attempt"] == 2, completed
    assert final["state"] == "COMPLETED" and final["attempt"] == 2, final
    assert sorted(workers) == sorted([first, "spare"])
    assert 1 <= len(lines(side)) <= 2, lines(side)


# ----------------------------------------------------------------------------- 2b. master SIGSTOP

def keep_store_busy(cluster: LocalCluster, stop: threading.Event) -> threading.Thread:
    """A client writing TitanStore keys as fast as it can until `stop` (at most a minute), so the master
    spends its turns on requests and a pause lands anywhere in a turn, not only in its poll."""
    def run():
        with TitanClient(port=cluster.port, timeout=30) as busy:
            deadline = time.monotonic() + 60
            while not stop.is_set() and time.monotonic() < deadline:
                busy.store_put("busy", "x")
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_a_paused_master_declares_no_worker_dead_and_runs_nothing_twice(chaos_cluster, script, tmp_path):
    """A busy master stopped past --worker-dead-after: its workers heartbeated all along (the heartbeats
    waited unread), so when it resumes none is dead and the running job is not run again elsewhere."""
    cluster = chaos_cluster(WorkerSpec("busy", slots=1), WorkerSpec("spare", slots=1))
    pid_file, gate, side = (str(tmp_path / name) for name in ("job.pid", "gate", "side_effect.txt"))
    path = script("paused.py", PY_WRITE_PID + f"""
    import time
    write_pid({pid_file!r}, os.getpid())
    while not os.path.exists({gate!r}):
        time.sleep(0.05)
    with open({side!r}, "a") as handle:
        handle.write(f"attempt {{os.environ['TITAN_ATTEMPT']}}\\n")
    """)
    seen: List[dict] = []
    with cluster.client() as client, client.events(topics=["job.", "worker."]) as events:
        client.submit_job(TitanJob("paused", path))
        wait_until(lambda: os.path.exists(pid_file), WAIT_S, "the job to start")
        stop_busy = threading.Event()
        busy = keep_store_busy(cluster, stop_busy)
        time.sleep(0.5)
        cluster.master.send_signal(signal.SIGSTOP)
        try:
            time.sleep(cluster.worker_dead_after + 2.0)
        finally:
            cluster.master.send_signal(signal.SIGCONT)
        client.ping()
        stop_busy.set()
        busy.join(timeout=30)
        open(gate, "w").close()
        assert client.wait("paused", timeout=WAIT_S) == "COMPLETED"
        drain_events(events, seen)
        info = client.job_info("paused")
    assert not [e for e in seen if e["topic"] == "worker.dead"], [e for e in seen if e["topic"].startswith("worker.")]
    assert info["attempt"] == 1 and info["worker"] == "busy", info
    assert lines(side) == ["attempt 1"]
    assert "did not look at its clock" in master_log(cluster)


# ----------------------------------------------------------------------------- 3. master SIGKILL mid-DAG

CHAINS, CHAIN_LENGTH = 5, 10
LONG_STEP = 2           # the third job of every chain runs 3 s: still running when its worker re-registers


@pytest.mark.timeout(90)
def test_master_sigkill_mid_dag_resumes_from_the_journal(chaos_cluster, script, tmp_path):
    workers = [WorkerSpec(f"w{i}", slots=2) for i in range(3)]
    cluster = chaos_cluster(*workers, data_dir=str(tmp_path / "data"), master_args=RETRY_BACKOFF)
    trail = tmp_path / "trail.txt"
    path = script("step.sh", f"""
        echo "$TITAN_JOB_ID" >> {shlex.quote(str(trail))}
        case "$TITAN_JOB_ID" in *_{LONG_STEP}) sleep 3 ;; *) sleep 0.2 ;; esac
        """)
    chains = [[f"c{c}_{k}" for k in range(CHAIN_LENGTH)] for c in range(CHAINS)]
    parents = {job: ([chain[k - 1]] if k else []) for chain in chains for k, job in enumerate(chain)}
    jobs = [TitanJob(job, path, parents=parents[job]) for chain in chains for job in chain]
    waited: Dict[str, object] = {}
    with cluster.client(timeout=15) as client:
        client.submit_dag("chains", jobs)
        # A wait() that spans the crash: its requests are retried and its event stream reconnects.
        waiter = in_thread(waited, "result", lambda: client.wait(list(parents), timeout=60))
        long_steps = {chain[LONG_STEP] for chain in chains}
        wait_until(lambda: long_steps <= set(lines(trail)), WAIT_S, "every chain to reach its long step")
        kill9(cluster.master)
        time.sleep(0.5)                      # jobs end meanwhile; their results wait in the workers
        cluster.start_master()
        waiter.join(70)
    assert waited.get("result") == {job: "COMPLETED" for job in parents}, waited
    with cluster.client(timeout=15) as client:
        reruns = {job["job_id"]: job["attempt"] for job in client.dag_status("chains")["jobs"] if job["attempt"] > 1}
    check_trail(lines(trail), parents, max_duplicates=sum(w.slots for w in workers))
    assert not set(reruns) & long_steps, f"jobs still running when the master died were run again: {reruns}"


def check_trail(trail: List[str], parents: Dict[str, List[str]], max_duplicates: int) -> None:
    """Every job ran once, or twice if a crash caught it running; none before its parents' first run."""
    counts = Counter(trail)
    assert set(counts) == set(parents), f"missing: {set(parents) - set(counts)}, unknown: {set(counts) - set(parents)}"
    twice = sorted(job for job, n in counts.items() if n > 1)
    assert all(counts[job] <= 2 for job in twice), {job: counts[job] for job in twice}
    assert len(twice) <= max_duplicates, f"{len(twice)} jobs ran twice, more than could be running: {twice}"
    first = {}
    for index, job in enumerate(trail):
        first.setdefault(job, index)
    late = [(job, parent) for job, ps in parents.items() for parent in ps if first[parent] > first[job]]
    assert not late, f"jobs that started before their parent: {late[:10]}"


# ----------------------------------------------------------------------------- 4. 5,000 jobs, workers dying

LAYERS, WIDTH = 50, 100
CHAOS_S = 40


@pytest.mark.timeout(150)
def test_5000_job_dag_completes_while_workers_are_killed_and_restarted(chaos_cluster, script, tmp_path):
    specs = {f"w{i}": WorkerSpec(f"w{i}", slots=2) for i in range(3)}
    # ~50 random kills: a job may be on three of the killed workers by bad luck, which --max-worker-losses
    # (default 3) rightly takes for a job that kills workers; here every job is innocent.
    cluster = chaos_cluster(*specs.values(), master_args=RETRY_BACKOFF + ["--max-worker-losses", "1000"])
    trail = tmp_path / "trail.txt"
    path = script("tick.sh", f'echo "$TITAN_JOB_ID" >> {shlex.quote(str(trail))}\n')
    parents = {f"j{layer}_{i}": ([f"j{layer - 1}_{i}", f"j{layer - 1}_{(i + 1) % WIDTH}"] if layer else [])
               for layer in range(LAYERS) for i in range(WIDTH)}
    rng = random.Random(5000)
    kills = 0
    started = time.monotonic()
    with cluster.client(timeout=30) as client:
        client.submit_dag("big", [TitanJob(job, path, parents=ps) for job, ps in parents.items()])
        while time.monotonic() - started < CHAOS_S:
            time.sleep(rng.uniform(0.5, 1.0))
            if client.stats()["jobs_by_state"]["COMPLETED"] == len(parents):
                break
            name = rng.choice(sorted(specs))
            kill9_worker(cluster, name)
            cluster.start_worker(specs[name])
            kills += 1
        final = client.wait(list(parents), timeout=60)
        elapsed = time.monotonic() - started
        reruns = sum(1 for job in client.dag_status("big")["jobs"] if job["attempt"] > 1)
        unfinished = [client.job_info(job) for job, state in final.items() if state != "COMPLETED"]
    print(f"\n5,000-job DAG: {elapsed:.1f}s with {kills} worker kills; {reruns} jobs ran more than once")
    assert Counter(final.values()) == {"COMPLETED": len(parents)}, unfinished[:3]
    assert kills >= 5 and reruns >= 1, (kills, reruns)
    # A job whose worker died after it wrote its line runs again: at most the slots of the killed workers.
    check_trail(lines(trail), parents, max_duplicates=kills * 2)


# ----------------------------------------------------------------------------- 5. TitanStore, any bytes

def strange_store_data() -> Dict[str, str]:
    big = "".join(chr(c) for c in range(0x20, 0x2FF)) + "|\n\t🚀中\x00"
    return {
        "pipe|key||": "a|b||c|",
        "new\nline\r\nkey": "line 1\nline 2\r\nline 3\n",
        "emoji 🚀🔥👩‍👩‍👧": "🧪✨ 👩‍👩‍👧 🏳️‍🌈",
        "日本語のキー": "中文值 — русский — العربية — עברית — हिन्दी — ไทย — 한국어",
        "nul inside": "before\x00after\x00\x00end",
        "nul\x00in\x00key": "\x00",
        "": "the empty key",
        "  spaces\tand tabs  ": "  leading and trailing  ",
        "empty value": "",
        "control \x01\x1f\x7f": "\x01\x02\x1b[31mred\x1b[0m",
        # as big as the default limit allows: at most 4 UTF-8 bytes a character
        "big, near the value limit": (big * (MAX_STORE_VALUE_BYTES // len(big) + 1))[:MAX_STORE_VALUE_BYTES // 4],
    }


def test_store_round_trips_any_characters_across_a_master_sigkill(chaos_cluster, tmp_path):
    cluster = chaos_cluster(WorkerSpec("w1", slots=1), data_dir=str(tmp_path / "data"))
    data = strange_store_data()
    members = ["a|b", "line\nbreak", "🚀", "日本", "nul\x00member", ""]
    with cluster.client(timeout=15) as client:
        for key, value in data.items():
            assert client.store_put(key, value) == "OK"
        for member in members:
            client.store_sadd("set|🚀\n", member)
        assert client.store_incr("counter ✓", by=41) == 41
        before = read_store(client, data)
    assert before == expected_store(data, members, 41)
    kill9(cluster.master)
    cluster.start_master()
    with cluster.client(timeout=15) as client:
        after = read_store(client, data)
        assert client.store_incr("counter ✓") == 42
    assert after == expected_store(data, members, 41)


def read_store(client: TitanClient, data: Dict[str, str]) -> dict:
    return {"keys": client.store_keys(), "values": {key: client.store_get(key) for key in data},
            "set": client.store_smembers("set|🚀\n"), "counter": client.store_get("counter ✓")}


def expected_store(data: Dict[str, str], members: List[str], counter: int) -> dict:
    return {"keys": sorted([*data, "set|🚀\n", "counter ✓"]), "values": dict(data), "set": sorted(members),
            "counter": str(counter)}


# ----------------------------------------------------------------------------- 6. corrupt journal

REFUSE_WITHIN_S = 5


def assert_refuses_journal(data_dir: str) -> None:
    """`python -m titan.master --data-dir DIR` must exit non-zero within seconds, naming the file, untouched."""
    path = os.path.join(data_dir, "titan.db")
    before = open(path, "rb").read()
    port = free_port_block("127.0.0.1", PORTS_PER_MASTER)
    try:
        result = subprocess.run([sys.executable, "-m", "titan.master", "--port", str(port), "--data-dir", data_dir],
                                capture_output=True, text=True, timeout=REFUSE_WITHIN_S, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as still_running:   # run() has killed it
        pytest.fail(f"the master was still running after {REFUSE_WITHIN_S}s on a corrupt journal: "
                    f"{still_running.stdout!r}; journal unchanged: {open(path, 'rb').read() == before}")
    output = result.stdout + result.stderr
    assert result.returncode != 0, f"the master started on a corrupt journal:\n{output}"
    assert path in output, f"the message does not name {path}:\n{output}"
    assert open(path, "rb").read() == before, "the master changed the corrupt journal"




@pytest.mark.parametrize("size", [64 * 1024, 1])
def test_garbage_journal_is_refused_with_its_path(tmp_path, size):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "titan.db").write_bytes(b"\xa5" + random.Random(6).randbytes(size - 1))
    assert_refuses_journal(str(data_dir))


def test_truncated_journal_is_refused_with_its_path(chaos_cluster, script, tmp_path):
    data_dir = str(tmp_path / "data")
    cluster = chaos_cluster(WorkerSpec("w1", slots=2), data_dir=data_dir)
    path = script("chatty.py", "print('x' * 2000)")
    with cluster.client() as client:
        ids = client.submit_dag("fill", [TitanJob(f"fill_{i}", path) for i in range(40)])
        assert set(client.wait(ids, timeout=WAIT_S).values()) == {"COMPLETED"}
        for i in range(50):
            client.store_put(f"key {i}", "value " * 100)
    cluster.stop()
    journal = os.path.join(data_dir, "titan.db")
    assert not os.path.exists(journal + "-wal") or os.path.getsize(journal + "-wal") == 0
    size = os.path.getsize(journal)
    assert size > 64 * 1024, f"the journal is only {size} bytes"
    with open(journal, "r+b") as handle:
        handle.truncate(size // 2)
    assert_refuses_journal(data_dir)



def test_a_second_master_on_the_same_data_dir_is_refused_and_the_first_carries_on(chaos_cluster, script, tmp_path):
    data_dir = str(tmp_path / "data")
    cluster = chaos_cluster(WorkerSpec("w1", slots=2), data_dir=data_dir)
    ok = script("ok.py", "print('ok')")
    with cluster.client() as client:
        client.store_put("kept", "yes")
        port = free_port_block("127.0.0.1", PORTS_PER_MASTER)
        second = subprocess.run([sys.executable, "-m", "titan.master", "--port", str(port), "--data-dir", data_dir],
                                capture_output=True, text=True, timeout=REFUSE_WITHIN_S, stdin=subprocess.DEVNULL)
        output = second.stdout + second.stderr
        assert second.returncode != 0, output
        assert os.path.join(data_dir, "titan.db") in output and "another Titan master" in output, output
        client.submit_job(TitanJob("after", ok))
        assert client.wait("after", timeout=WAIT_S) == "COMPLETED"
    kill9(cluster.master)
    cluster.start_master()
    with cluster.client() as client:
        assert client.store_get("kept") == "yes"
        assert client.get_job_status("after") == "COMPLETED"

# ----------------------------------------------------------------------------- 7. retries and timeouts

def test_retries_and_timeouts_end_to_end(chaos_cluster, script, tmp_path):
    cluster = chaos_cluster(WorkerSpec("w1", slots=2), WorkerSpec("w2", slots=2), master_args=RETRY_BACKOFF,
                            data_dir=str(tmp_path / "data"))
    flaky = script("flaky.py", """
        import os, sys
        counter = sys.argv[1]
        runs = int(open(counter).read()) + 1 if os.path.exists(counter) else 1
        open(counter, "w").write(str(runs))
        print(f"run {runs} attempt {os.environ['TITAN_ATTEMPT']}", flush=True)
        sys.exit(0 if runs >= 3 else 1)
        """)
    pid_file = str(tmp_path / "sleeper_child.pid")
    sleeper = script("sleeper.py", PY_WRITE_PID + f"""
    import subprocess, sys, time
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    write_pid({pid_file!r}, child.pid)
    print("started", flush=True)
    time.sleep(60)
    """)
    with cluster.client() as client:
        client.submit_job(TitanJob("third_time_lucky", flaky, args=str(tmp_path / "count3"), retries=2))
        client.submit_job(TitanJob("out_of_retries", flaky, args=str(tmp_path / "count2"), retries=1))
        started = time.monotonic()
        client.submit_job(TitanJob("sleeper", sleeper, timeout=1))
        assert client.wait("sleeper", timeout=WAIT_S) == "FAILED"
        took = time.monotonic() - started
        sleeper_info = client.job_info("sleeper")
        assert client.wait(["third_time_lucky", "out_of_retries"], timeout=WAIT_S) == {
            "third_time_lucky": "COMPLETED", "out_of_retries": "FAILED"}
        lucky, unlucky = client.job_info("third_time_lucky"), client.job_info("out_of_retries")
        lucky_logs, unlucky_logs = client.fetch_logs("third_time_lucky"), client.fetch_logs("out_of_retries")
    assert sleeper_info["reason"] == "timeout" and took < 6, (sleeper_info, took)
    assert not wait_gone([read_pid(pid_file)]), "the timed-out job's child process survived"
    assert lucky["attempt"] == 3 and lucky["failures"] == 2, lucky
    assert lucky_logs == ("--- attempt 1 ---\nrun 1 attempt 1\n--- attempt 2 ---\nrun 2 attempt 2\n"
                          "--- attempt 3 ---\nrun 3 attempt 3\n"), lucky_logs
    assert unlucky["attempt"] == 2 and unlucky["failures"] == 2 and unlucky["reason"] == "exit code 1", unlucky
    assert unlucky_logs == "--- attempt 1 ---\nrun 1 attempt 1\n--- attempt 2 ---\nrun 2 attempt 2\n", unlucky_logs
    kill9(cluster.master)                  # every attempt's logs and the job's story survive a crash
    cluster.start_master()
    with cluster.client() as client:
        assert client.fetch_logs("third_time_lucky") == lucky_logs
        assert client.fetch_logs("out_of_retries") == unlucky_logs
        assert client.job_info("third_time_lucky") == lucky and client.job_info("out_of_retries") == unlucky
        assert client.job_info("sleeper") == sleeper_info


# ----------------------------------------------------------------------------- 8. cancel_dag

def test_cancel_dag_kills_running_jobs_and_cancels_the_rest(chaos_cluster, script, tmp_path):
    cluster = chaos_cluster(WorkerSpec("w1", slots=2), WorkerSpec("w2", slots=2))
    pids = tmp_path / "pids"
    pids.mkdir()
    hold = script("hold.py", PY_WRITE_PID + f"""
    import subprocess, sys, time
    job = os.environ["TITAN_JOB_ID"]
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    write_pid(os.path.join({str(pids)!r}, job + ".child"), child.pid)
    write_pid(os.path.join({str(pids)!r}, job + ".job"), os.getpid())
    time.sleep(60)
    """)
    roots = [f"hold_{i}" for i in range(4)]
    jobs = [TitanJob(job, hold) for job in roots]
    jobs += [TitanJob("merge_a", hold, parents=roots[:2]), TitanJob("merge_b", hold, parents=roots[2:]),
             TitanJob("final", hold, parents=["merge_a", "merge_b"])]
    with cluster.client() as client:
        ids = client.submit_dag("doomed", jobs)
        wait_until(lambda: len(os.listdir(pids)) == 2 * len(roots), WAIT_S, "every root job to start")
        assert {client.get_job_status(job) for job in roots} == {"RUNNING"}
        started = [read_pid(pids / name) for name in sorted(os.listdir(pids))]
        client.cancel_dag("doomed")
        final = client.wait(ids, timeout=WAIT_S)
        dag = client.dag_status("doomed")
    assert final == {job: "CANCELLED" for job in ids}
    assert dag["finished"] and {job["state"] for job in dag["jobs"]} == {"CANCELLED"}
    assert not wait_gone(started), "a cancelled job's process (or its child) survived"


# ----------------------------------------------------------------------------- 9. the SDK across a restart

def test_sdk_call_survives_a_master_restart_within_its_timeout(chaos_cluster, script, tmp_path):
    cluster = chaos_cluster(WorkerSpec("w1", slots=2), data_dir=str(tmp_path / "data"))
    trail = tmp_path / "trail.txt"
    path = script("mark.sh", f'echo "$TITAN_JOB_ID" >> {shlex.quote(str(trail))}\nsleep "${{1:-0}}"\n')
    results: Dict[str, object] = {}

    def call(name: str, action: Callable[[TitanClient], object]) -> threading.Thread:
        def with_own_client():
            with cluster.client(timeout=15) as client:
                return action(client)
        return in_thread(results, name, with_own_client)

    with cluster.client() as client:
        client.submit_job(TitanJob("before", path, args="1.5"))
        wait_until(lambda: "before" in lines(trail), WAIT_S, "the first job to start")
    kill9(cluster.master)
    threads = [call("submit", lambda c: c.submit_job(TitanJob("during", path))),
               call("wait", lambda c: c.wait("before", timeout=20))]
    time.sleep(3)                       # past the client's 2 s retry interval: the requests are re-sent
    assert not results, f"answered while the master was down: {results}"
    cluster.start_master()
    for thread in threads:
        thread.join(20)
    assert results == {"submit": "during", "wait": "COMPLETED"}, results
    with cluster.client() as client:
        assert client.wait("during", timeout=WAIT_S) == "COMPLETED"
        assert client.job_info("during")["attempt"] == 1
    time.sleep(0.5)
    assert Counter(lines(trail))["during"] == 1, "the retried submission ran twice"


def test_sdk_names_the_address_when_the_master_stays_down(chaos_cluster):
    cluster = chaos_cluster(WorkerSpec("w1", slots=1))
    kill9(cluster.master)
    with cluster.client(timeout=1.5) as client:
        started = time.monotonic()
        with pytest.raises(MasterUnreachable, match=f"{cluster.host}:{cluster.port}") as raised:
            client.stats()
        took = time.monotonic() - started
    assert 1.4 <= took < 4, took
    assert raised.value.details["address"] == f"tcp://{cluster.host}:{cluster.port}"


def test_request_repeated_after_a_crash_is_answered_from_the_journal(chaos_cluster, script, tmp_path):
    """A reply lost in a crash: the SDK repeats the request id to the restarted master, which must answer
    from its journaled reply cache, not submit again (the job has ended, so a new submission would re-run it)."""
    cluster = chaos_cluster(WorkerSpec("w1", slots=1), data_dir=str(tmp_path / "data"))
    trail = tmp_path / "trail.txt"
    job = TitanJob("once", script("once.sh", f'echo "$TITAN_JOB_ID" >> {shlex.quote(str(trail))}\n')).to_spec()
    submit = protocol.encode({"op": "submit", "rid": uuid.uuid4().hex, "dag": None,
                              "jobs": [jobwire.job_to_wire(job)]})
    incr = protocol.encode({"op": "incr", "rid": uuid.uuid4().hex, "key": "n", "by": 5})
    first = (raw_request(cluster.port, submit), raw_request(cluster.port + 3, incr, envelope=True))
    with cluster.client() as client:
        assert client.wait("once", timeout=WAIT_S) == "COMPLETED"
    kill9(cluster.master)
    cluster.start_master()
    again = (raw_request(cluster.port, submit), raw_request(cluster.port + 3, incr, envelope=True))
    assert again == first and first[0]["ok"] and first[1]["result"] == 5, (first, again)
    with cluster.client() as client:
        assert client.get_job_status("once") == "COMPLETED" and client.job_info("once")["attempt"] == 1
        assert client.store_get("n") == "5"
    assert lines(trail) == ["once"]


def raw_request(port: int, request: bytes, envelope: bool = False) -> dict:
    """One request from a new connection that names itself as the SDK does (replies are kept per client)."""
    ctx = zmq.Context()
    dealer = ctx.socket(zmq.DEALER)
    dealer.linger = 0
    dealer.setsockopt(zmq.IDENTITY, b"sdk-chaos-test-client")
    dealer.connect(f"tcp://127.0.0.1:{port}")
    try:
        dealer.send_multipart([b"", request] if envelope else [request])
        assert dealer.poll(10_000), f"no reply from port {port}"
        return protocol.decode_reply(dealer.recv_multipart()[-1])
    finally:
        ctx.destroy(linger=0)


# ----------------------------------------------------------------------------- 10. gates across a restart

def test_waiting_gate_and_its_children_survive_a_master_sigkill(chaos_cluster, script, tmp_path):
    """A gate is a run the master adds itself; it must be journaled like the jobs around it."""
    cluster = chaos_cluster(WorkerSpec("w1", slots=2), data_dir=str(tmp_path / "data"))
    ok = script("ok.py", "print('ok')")
    jobs = [TitanJob("train", ok, hitl_message="look at the loss first"), TitanJob("deploy", ok, parents=["train"])]
    with cluster.client(timeout=15) as client:
        client.submit_dag("gated", jobs)
        wait_until(lambda: client.get_job_status("hitl-gate-train") == "WAITING_APPROVAL", 30, "the gate to wait")
    kill9(cluster.master)
    cluster.start_master()
    with cluster.client(timeout=15) as client:
        assert client.job_info("hitl-gate-train")["state"] == "WAITING_APPROVAL"
        assert client.get_job_status("deploy") == "PENDING"
        assert client.approve("hitl-gate-train") == "COMPLETED"
        assert client.wait("deploy", timeout=30) == "COMPLETED"


def test_jobs_never_dispatched_survive_a_master_sigkill_and_an_idle_master_folds_its_journal(
        chaos_cluster, script, tmp_path):
    """Runs not yet dispatched are journaled by their spec alone; they come back queued and run once a
    worker that can take them joins. An idle master folds its state changes into job_states."""
    data_dir = tmp_path / "data"
    cluster = chaos_cluster(WorkerSpec("general", slots=2), data_dir=str(data_dir))
    ok = script("ok.py", "print('ok')")
    done = [TitanJob(f"done{n}", ok) for n in range(5)]
    waiting = [TitanJob(f"gpu{n}", ok, requirement="GPU") for n in range(3)]
    with cluster.client(timeout=15) as client:
        client.submit_dag("mixed", done + waiting)
        assert client.wait([job.job_id for job in done], timeout=30) == {job.job_id: "COMPLETED" for job in done}
        assert {client.get_job_status(job.job_id) for job in waiting} == {"QUEUED"}
        wait_until(lambda: client.stats()["journal_backlog"] == 0, 10, "the idle master to fold its state changes")
    kill9(cluster.master)
    cluster.start_master()
    with cluster.client(timeout=15) as client:
        assert {client.get_job_status(job.job_id) for job in done} == {"COMPLETED"}
        assert {client.get_job_status(job.job_id) for job in waiting} == {"QUEUED"}
        cluster.start_worker(WorkerSpec("gpu", slots=2, capabilities=("GPU",)))
        assert client.wait([job.job_id for job in waiting], timeout=30) == {job.job_id: "COMPLETED" for job in waiting}
        assert all(client.job_info(job.job_id)["attempt"] == 1 for job in waiting)

