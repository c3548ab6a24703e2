"""Across machines: a master and workers in their own network namespaces, talking over real TCP.

Each test builds a private network that nothing else can reach: a namespace for the master (a bridge
`br0` holding 10.231.0.1/24) and one per worker, joined to the master's bridge by a veth pair whose ends
are created directly inside the namespaces. The root namespace's interfaces and routes are never touched,
and all traffic stays inside these namespaces. The master, the workers and the SDK client (a small agent
process answering JSON lines on stdin/stdout) run under `ip netns exec`, so they are children of this
test and the no-leftover-process check applies to them.

Needs root (or CAP_SYS_ADMIN + CAP_NET_ADMIN) on Linux; elsewhere every test here is skipped, with the
failing command and its error in the skip reason.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from typing import Dict, List, Optional

import psutil
import pytest

from tests.conftest import FAST_DEAD_AFTER_S, FAST_HEARTBEAT_S

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SUBNET_PREFIX = "10.231.0"          # exists only inside the namespaces these tests create
MASTER_IP = f"{SUBNET_PREFIX}.1"
MASTER_PORT = 9090                  # the master's namespace is private, so any port is free
WORKER_NIC = "eth0"                 # the worker's end of its veth pair, inside the worker's namespace
WAIT_S = 20


# ----------------------------------------------------------------------------- running `ip`

class SetupRefused(Exception):
    """The kernel or the sandbox refused a namespace or link operation."""


def _ip(*args: str, ip_command: str = "ip") -> None:
    command = [ip_command, *args]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=10)
    except FileNotFoundError as exc:
        raise SetupRefused(f"`{' '.join(command)}` could not run: {exc}") from None
    if result.returncode != 0:
        raise SetupRefused(f"`{' '.join(command)}` exited {result.returncode}: "
                           f"{(result.stderr or result.stdout).strip() or '(no output)'}")


def create_namespace_or_skip(name: str, ip_command: str = "ip") -> None:
    """`ip netns add NAME`, or skip the test saying exactly which command failed and why."""
    if not sys.platform.startswith("linux"):
        pytest.skip(f"network namespaces need Linux; this is {sys.platform}")
    try:
        _ip("netns", "add", name, ip_command=ip_command)
    except SetupRefused as exc:
        pytest.skip(f"network namespaces are not permitted here (these tests need root on Linux): {exc}")


def _is_permission_problem(message: str) -> bool:
    lowered = message.lower()
    return any(word in lowered for word in ("not permitted", "permission denied", "not supported",
                                            "unknown device type", "could not run"))


# ----------------------------------------------------------------------------- the SDK, inside the namespace

AGENT = textwrap.dedent("""
    import json, sys, threading, traceback
    from titan_sdk import TitanClient, TitanJob

    host, port = sys.argv[1], int(sys.argv[2])
    client = TitanClient(host=host, port=port, timeout=10)
    seen, stop = [], threading.Event()
    watcher = TitanClient(host=host, port=port, timeout=10)
    stream = watcher.events()                  # subscribed (confirmed by the master) before we say ready

    def collect():
        while not stop.is_set():
            event = stream.get(timeout=0.1)
            if event is not None:
                seen.append(event)

    thread = threading.Thread(target=collect, daemon=True)
    thread.start()

    def job(spec):
        return TitanJob(**spec)

    def call(method, args, kwargs):
        if method == "events":
            return list(seen)
        if method == "submit_job":
            return client.submit_job(job(args[0]))
        if method == "submit_dag":
            return client.submit_dag(args[0], [job(spec) for spec in args[1]])
        return getattr(client, method)(*args, **kwargs)

    print(json.dumps({"ok": True, "result": "ready"}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        try:
            reply = {"ok": True, "result": call(request["method"], request["args"], request["kwargs"])}
        except Exception as exc:
            reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}", "trace": traceback.format_exc()}
        print(json.dumps(reply, default=str), flush=True)
    stop.set()
    thread.join(2)
    stream.close()
    watcher.close()
    client.close()
""")


class NamespaceClient:
    """Forwards SDK calls to an agent process running inside the master's namespace."""

    def __init__(self, namespace: str, env: dict, log_path: str):
        self.log_path = log_path
        self._stderr = open(log_path, "ab")
        self.process = subprocess.Popen(
            ["ip", "netns", "exec", namespace, sys.executable, "-c", AGENT, MASTER_IP, str(MASTER_PORT)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr, env=env, cwd=REPO_ROOT)
        self._buffer = b""
        try:
            self._read_reply(timeout=WAIT_S)   # "ready": the event subscription is live
        except BaseException:
            self.close()
            raise

    def _read_reply(self, timeout: float):
        deadline = time.monotonic() + timeout
        fd = self.process.stdout.fileno()
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"the SDK agent gave no answer within {timeout:g}s; see {self.log_path}")
            readable, _, _ = select.select([fd], [], [], remaining)
            if readable:
                chunk = os.read(fd, 65536)
                if not chunk:
                    raise RuntimeError(f"the SDK agent exited ({self.process.poll()}); see {self.log_path}")
                self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        reply = json.loads(line)
        if not reply["ok"]:
            raise RuntimeError(f"SDK call failed inside the master's namespace: {reply['error']}")
        return reply["result"]

    def call(self, method: str, *args, **kwargs):
        """client.call("wait", "job", timeout=5) runs TitanClient.wait("job", timeout=5) in the namespace."""
        request = {"method": method, "args": list(args), "kwargs": kwargs}
        self.process.stdin.write(json.dumps(request).encode() + b"\n")
        self.process.stdin.flush()
        return self._read_reply(WAIT_S + (kwargs.get("timeout") or 0))

    def __getattr__(self, method: str):
        if method.startswith("_"):
            raise AttributeError(method)
        return lambda *args, **kwargs: self.call(method, *args, **kwargs)

    def close(self) -> None:
        if self.process.poll() is None:
            try:
                self.process.stdin.close()
                self.process.wait(5)
            except (OSError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait()
        self._stderr.close()


# ----------------------------------------------------------------------------- the private network

class NetnsCluster:
    """A master namespace with a bridge, N worker namespaces on veth pairs, and the processes in them."""

    def __init__(self, log_dir: str, worker_count: int):
        self.tag = uuid.uuid4().hex[:8]
        self.log_dir = log_dir
        self.master_ns = f"titan-m-{self.tag}"
        self.worker_ns: Dict[str, str] = {}       # worker name -> its namespace
        self.worker_ip: Dict[str, str] = {}
        self.worker_cap: Dict[str, str] = {}      # a capability only that worker offers, to place jobs on it
        self.namespaces: List[str] = []
        self.processes: Dict[str, subprocess.Popen] = {}
        self.client: Optional[NamespaceClient] = None
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1",
                    "PYTHONPATH": os.pathsep.join(p for p in [REPO_ROOT, os.environ.get("PYTHONPATH")] if p)}
        for index in range(1, worker_count + 1):
            name = f"w{index}"
            self.worker_ns[name] = f"titan-{name}-{self.tag}"
            self.worker_ip[name] = f"{SUBNET_PREFIX}.{10 + index}"
            self.worker_cap[name] = f"NS_{name.upper()}"

    # -- network

    def build_network(self) -> None:
        create_namespace_or_skip(self.master_ns)
        self.namespaces.append(self.master_ns)
        try:
            m = self.master_ns
            _ip("-n", m, "link", "set", "lo", "up")
            _ip("-n", m, "link", "add", "br0", "type", "bridge")
            _ip("-n", m, "addr", "add", f"{MASTER_IP}/24", "dev", "br0")
            _ip("-n", m, "link", "set", "br0", "up")
            for name, ns in self.worker_ns.items():
                _ip("netns", "add", ns)
                self.namespaces.append(ns)
                master_end = f"v{name}"
                # Both ends are born inside the namespaces: nothing appears in the root namespace.
                _ip("-n", m, "link", "add", master_end, "type", "veth", "peer", "name", WORKER_NIC, "netns", ns)
                _ip("-n", m, "link", "set", master_end, "master", "br0")
                _ip("-n", m, "link", "set", master_end, "up")
                _ip("-n", ns, "link", "set", "lo", "up")
                _ip("-n", ns, "addr", "add", f"{self.worker_ip[name]}/24", "dev", WORKER_NIC)
                _ip("-n", ns, "link", "set", WORKER_NIC, "up")
        except SetupRefused as exc:
            if _is_permission_problem(str(exc)):
                pytest.skip(f"network namespaces are permitted but building links in them is not: {exc}")
            raise

    def set_link(self, worker: str, state: str, end: str = "worker") -> None:
        """Take the worker's link "down" or bring it back "up", at the worker's own NIC (end="worker":
        its route disappears, sends fail locally) or at its port on the master's bridge (end="switch":
        the worker keeps its route and its packets vanish)."""
        if end == "worker":
            _ip("-n", self.worker_ns[worker], "link", "set", WORKER_NIC, state)
        else:
            _ip("-n", self.master_ns, "link", "set", f"v{worker}", state)

    # -- processes

    def _spawn(self, label: str, namespace: str, args: List[str]) -> subprocess.Popen:
        with open(os.path.join(self.log_dir, f"{label}.log"), "ab") as output:
            process = subprocess.Popen(["ip", "netns", "exec", namespace, sys.executable, *args],
                                       stdout=output, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                       env=self.env, cwd=REPO_ROOT)
        self.processes[label] = process
        return process

    def start(self) -> "NetnsCluster":
        self.build_network()
        self._spawn("master", self.master_ns,
                    # --insecure: the namespaces' network is private to this test (CURVE has its own tests)
                    ["-m", "titan.master", "--host", MASTER_IP, "--port", str(MASTER_PORT), "--insecure",
                     "--heartbeat-interval", str(FAST_HEARTBEAT_S), "--worker-dead-after", str(FAST_DEAD_AFTER_S)])
        for name, ns in self.worker_ns.items():
            self._spawn(name, ns,
                        ["-m", "titan.worker", "--master", f"{MASTER_IP}:{MASTER_PORT}", "--name", name,
                         "--slots", "1", "--cap", self.worker_cap[name],
                         "--heartbeat-interval", str(FAST_HEARTBEAT_S),
                         "--master-dead-after", str(FAST_DEAD_AFTER_S)])
        self.client = NamespaceClient(self.master_ns, self.env, os.path.join(self.log_dir, "agent.log"))
        self.wait_for(lambda: set(self.worker_names()) == set(self.worker_ns), "every worker to register")
        return self

    def worker_names(self) -> List[str]:
        return sorted(worker["name"] for worker in self.client.stats()["workers"])

    def wait_for(self, condition, what: str, timeout: float = WAIT_S) -> float:
        """Poll until condition() is true; returns the seconds it took. Fails naming `what` and the logs."""
        started = time.monotonic()
        while not condition():
            for label, process in self.processes.items():
                if process.poll() is not None:
                    raise AssertionError(f"{label} exited with {process.returncode} while waiting for {what}"
                                         f"\n{self.log_tails()}")
            if time.monotonic() - started > timeout:
                raise AssertionError(f"timed out after {timeout:g}s waiting for {what}\n{self.log_tails()}")
            time.sleep(0.05)
        return time.monotonic() - started

    def log_tails(self, lines: int = 15) -> str:
        tails = []
        for label in [*self.processes, "agent"]:
            path = os.path.join(self.log_dir, f"{label}.log")
            if os.path.exists(path):
                with open(path, errors="replace") as handle:
                    tail = handle.read().splitlines()[-lines:]
                tails.append(f"--- {label}.log\n" + "\n".join(tail))
        return "\n".join(tails)

    # -- teardown

    def stop(self) -> None:
        """Stop every process (workers first, so they say goodbye), then delete every namespace."""
        if self.client is not None:
            self.client.close()
        descendants = []
        for process in self.processes.values():
            try:
                descendants += psutil.Process(process.pid).children(recursive=True)
            except psutil.NoSuchProcess:
                pass
        ordered = [p for label, p in self.processes.items() if label != "master"]
        ordered += [p for label, p in self.processes.items() if label == "master"]
        for process in ordered:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 5
        for process in ordered:
            try:
                process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for leftover in descendants:           # a job a killed worker could not stop
            try:
                leftover.kill()
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(descendants, timeout=5)
        problems = []
        for namespace in reversed(self.namespaces):
            try:
                _ip("netns", "del", namespace)
            except SetupRefused as exc:
                problems.append(str(exc))
        self.namespaces.clear()
        assert not problems, f"could not delete namespaces: {problems}"


@pytest.fixture
def netns_cluster(tmp_path):
    """A master and two workers (w1, w2; one slot each), each in its own network namespace."""
    log_dir = tmp_path / "logs"
    log_dir.mkdir()
    cluster = NetnsCluster(str(log_dir), worker_count=2)
    try:
        yield cluster.start()
    finally:
        cluster.stop()


def namespace_inode(namespace: str) -> str:
    return f"net:[{os.stat(f'/run/netns/{namespace}').st_ino}]"


def process_namespace(pid: int) -> str:
    return os.readlink(f"/proc/{pid}/ns/net")


# A job that reports where it ran: its worker, the address it reaches the master from, its namespace.
WHERE_AM_I = """
    import json, os, socket
    from titan_sdk import TitanClient
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.connect((os.environ["TITAN_HOST"], 9))          # UDP connect: picks a route, sends nothing
    here = {"worker": os.environ["TITAN_WORKER_ID"], "ip": probe.getsockname()[0],
            "netns": os.readlink("/proc/self/ns/net"), "master": os.environ["TITAN_HOST"]}
    probe.close()
    with TitanClient(timeout=10) as client:               # over TCP, from the worker's namespace
        client.store_put("where/" + os.environ["TITAN_JOB_ID"], json.dumps(here))
    print(json.dumps(here))
"""


# ----------------------------------------------------------------------------- tests

def test_workers_in_their_own_namespaces_run_a_dag_over_tcp(netns_cluster, script):
    cluster, client = netns_cluster, netns_cluster.client
    assert process_namespace(cluster.processes["master"].pid) == namespace_inode(cluster.master_ns)
    for name, ns in cluster.worker_ns.items():
        assert process_namespace(cluster.processes[name].pid) == namespace_inode(ns)
    registered = {w["name"]: w for w in client.stats()["workers"]}
    assert {name: w["pid"] for name, w in registered.items()} == {
        name: cluster.processes[name].pid for name in cluster.worker_ns}

    where = script("where.py", WHERE_AM_I)
    merge = script("merge.py", """
        from titan_sdk import TitanClient
        with TitanClient(timeout=10) as client:
            print(sorted(client.store_keys("where/")))
        """)
    jobs = [{"job_id": "fetch", "filename": where, "priority": 5},
            *({"job_id": f"shard_{name}", "filename": where, "requirement": cluster.worker_cap[name],
               "parents": ["fetch"]} for name in ("w1", "w2")),
            {"job_id": "merge", "filename": merge, "parents": ["shard_w1", "shard_w2"]}]
    ids = client.submit_dag("across", jobs)
    assert client.wait(ids, timeout=WAIT_S) == {job: "COMPLETED" for job in ids}, cluster.log_tails()

    for name in ("w1", "w2"):
        here = json.loads(client.fetch_logs(f"shard_{name}"))
        assert here == {"worker": name, "ip": cluster.worker_ip[name],
                        "netns": namespace_inode(cluster.worker_ns[name]), "master": MASTER_IP}
        assert json.loads(client.store_get(f"where/shard_{name}")) == here
        assert client.job_info(f"shard_{name}")["worker"] == name
    fetched = json.loads(client.fetch_logs("fetch"))
    assert fetched["ip"] == cluster.worker_ip[fetched["worker"]]
    assert client.fetch_logs("merge").strip() == "['where/fetch', 'where/shard_w1', 'where/shard_w2']"
    assert {client.job_info(job)["worker"] for job in ids} == {"w1", "w2"}


@pytest.mark.parametrize("end", ["worker", "switch"], ids=["worker-nic-down", "switch-port-down"])
def test_cut_link_is_detected_like_a_hang_and_the_worker_rejoins(netns_cluster, script, tmp_path, end):
    cluster, client = netns_cluster, netns_cluster.client
    gate, pids = tmp_path / "gate", tmp_path / "pids"
    pids.mkdir()
    path = script("cut.py", f"""
        import os, time
        attempt = os.environ["TITAN_ATTEMPT"]
        with open(os.path.join({str(pids)!r}, "attempt-" + attempt), "w") as f:
            f.write(str(os.getpid()))
        print("attempt", attempt, "on", os.environ["TITAN_WORKER_ID"], flush=True)
        if attempt == "1":                        # the first attempt hangs until released (bounded)
            deadline = time.monotonic() + 45
            while not os.path.exists({str(gate)!r}) and time.monotonic() < deadline:
                time.sleep(0.05)
        print("done", attempt, flush=True)
        """)
    client.submit_job({"job_id": "cut_job", "filename": path})
    cluster.wait_for(lambda: (pids / "attempt-1").exists() and client.get_job_status("cut_job") == "RUNNING",
                     "cut_job to start")
    first = client.job_info("cut_job")["worker"]
    other = next(name for name in cluster.worker_ns if name != first)
    first_attempt = psutil.Process(int((pids / "attempt-1").read_text()))

    cluster.set_link(first, "down", end)
    detected = cluster.wait_for(lambda: first not in cluster.worker_names(),
                                f"the master to notice {first}'s link is cut", timeout=10)
    assert detected < 3 * FAST_DEAD_AFTER_S, f"took {detected:.1f}s to notice a cut link"
    assert client.wait("cut_job", timeout=WAIT_S) == "COMPLETED"
    info = client.job_info("cut_job")
    assert (info["worker"], info["attempt"]) == (other, 2), info
    logs_after_cut = f"--- attempt 1 ---\nattempt 1 on {first}\n--- attempt 2 ---\nattempt 2 on {other}\ndone 2\n"
    assert client.fetch_logs("cut_job") == logs_after_cut
    assert first_attempt.is_running(), "the cut-off worker's attempt should still run: it heard nothing"

    cluster.set_link(first, "up", end)
    rejoined = cluster.wait_for(lambda: first in cluster.worker_names(), f"{first} to re-register", timeout=25)
    # Re-registering, the worker claims attempt 1, which is no longer its own: the master stops it.
    gone, alive = psutil.wait_procs([first_attempt], timeout=10)
    assert not alive, "the stale attempt 1 kept running after its worker rejoined"

    client.submit_job({"job_id": "after", "filename": script("where.py", WHERE_AM_I),
                       "requirement": cluster.worker_cap[first]})
    assert client.wait("after", timeout=WAIT_S) == "COMPLETED", cluster.log_tails()
    here = json.loads(client.fetch_logs("after"))
    assert (here["worker"], here["ip"]) == (first, cluster.worker_ip[first])

    # Killed, attempt 1 was reported (exit -9) before "after" ran on the same connection: it changed nothing.
    info = client.job_info("cut_job")
    assert (info["state"], info["worker"], info["attempt"]) == ("COMPLETED", other, 2), info
    assert client.fetch_logs("cut_job") == logs_after_cut
    events = client.events()
    cut_events = [(e["topic"], e.get("worker"), e.get("attempt")) for e in events if e.get("job_id") == "cut_job"]
    assert cut_events.count(("job.COMPLETED", other, 2)) == 1 and \
        [t for t, _, _ in cut_events].count("job.COMPLETED") == 1, cut_events
    requeued = [e for e in events if e.get("job_id") == "cut_job" and e["topic"] == "job.QUEUED"
                and repr(first) in (e.get("reason") or "")]
    assert len(requeued) == 1, cut_events
    dead = [e for e in events if e["topic"] == "worker.dead" and e["worker"] == first]
    assert len(dead) == 1 and dead[0]["running"] == ["cut_job"], dead
    rejoins = [e for e in events if e["topic"] == "worker.joined" and e["seq"] > dead[0]["seq"]]
    assert [e["worker"] for e in rejoins] == [first], rejoins
    assert client.stats()["jobs_by_state"]["COMPLETED"] == 2
    print(f"[{end}] cut detected after {detected:.1f}s; {first} re-registered {rejoined:.1f}s after the link "
          "came back")


def test_skip_names_the_command_and_its_error(tmp_path):
    refusing = tmp_path / "ip"
    refusing.write_text("#!/bin/sh\necho 'mkdir /run/netns failed: Permission denied' >&2\nexit 1\n")
    refusing.chmod(0o755)
    with pytest.raises(pytest.skip.Exception) as skipped:
        create_namespace_or_skip("titan-never-made", ip_command=str(refusing))
    message = str(skipped.value)
    assert f"`{refusing} netns add titan-never-made` exited 1" in message
    assert "mkdir /run/netns failed: Permission denied" in message and "not permitted" in message

    with pytest.raises(pytest.skip.Exception) as skipped:
        create_namespace_or_skip("titan-never-made", ip_command=str(tmp_path / "no-such-ip"))
    assert "no-such-ip netns add titan-never-made` could not run" in str(skipped.value)
