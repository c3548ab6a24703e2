"""A keyed cluster (CURVE on every socket), roles, revocation, what the wire shows, the safe default
bind, and every limit, against real master and worker processes on loopback."""

from __future__ import annotations

import os
import selectors
import shutil
import socket
import subprocess
import sys
import threading
import time

import pytest

from titan import cli
from titan.cluster import WorkerSpec, free_port_block
from titan.core.errors import AccessDenied, LimitExceeded, MasterUnreachable, RequestRejected
from titan.net import security
from titan_sdk import TitanClient, TitanJob
from tests.conftest import wait_until

pytestmark = pytest.mark.timeout(120)

SHORT = 1.5   # client timeout where no answer is the expected outcome


@pytest.fixture
def key_dir(tmp_path):
    root = str(tmp_path / "keys")
    assert cli.main(["keys", "init", root]) == 0
    return root


def bundle(root: str, role: str, name: str) -> str:
    return os.path.join(root, "issued", f"{role}-{name}")


def master_log(cluster) -> str:
    with open(os.path.join(cluster.log_dir, "master.log")) as handle:
        return handle.read()


# ----------------------------------------------------------------- keys and a keyed cluster at work

def test_keys_commands_issue_and_refuse_duplicates(key_dir, capsys):
    assert cli.main(["keys", "add-client", "alice", "--keys", key_dir]) == 0
    assert cli.main(["keys", "add-worker", "gpu-box", "--keys", key_dir]) == 0
    assert "clients/alice.key" in capsys.readouterr().out
    assert cli.main(["keys", "add-client", "alice", "--keys", key_dir]) == 2
    assert "already exists" in capsys.readouterr().err
    assert cli.main(["keys", "init", key_dir]) == 2
    for path in ("master/master.key_secret", "issued/client-alice/identity.key_secret",
                 "issued/worker-gpu-box/identity.key_secret"):
        assert os.stat(os.path.join(key_dir, path)).st_mode & 0o077 == 0, f"{path} is readable by others"
    assert os.path.exists(os.path.join(key_dir, "workers", "gpu-box.key"))


def test_a_job_reaches_a_keyed_master_with_a_key_of_its_own(make_cluster, key_dir, script, tmp_path):
    cluster = make_cluster(WorkerSpec("w1"), keys=key_dir)
    worker_public = open(os.path.join(bundle(key_dir, "worker", "worker"), "identity.key_secret")).read()
    worker_public = worker_public.split('public-key = "')[1].split('"')[0]
    stolen = str(tmp_path / "stolen")
    child = script("child.py", "print('child ran')\n")
    parent = script("parent.py", f"""
        import os, shutil
        from titan_sdk import TitanClient, TitanJob
        keys = os.environ["TITAN_KEYS"]
        assert not keys.startswith({key_dir!r}), "the job got the worker's own key files"
        assert os.stat(keys).st_mode & 0o077 == 0 and os.stat(keys + "/identity.key_secret").st_mode & 0o077 == 0
        assert "secret" not in open(keys + "/master.key").read()
        assert {worker_public!r} not in open(keys + "/identity.key_secret").read(), "the worker's key pair"
        assert "TITAN_JOB_TOKEN" not in os.environ
        shutil.copytree(keys, {stolen!r})   # what a hostile job could take away with it
        client = TitanClient(timeout=20)
        client.store_put("seen-by", os.environ["TITAN_JOB_ID"])
        client.submit_job(TitanJob("child", {child!r}))
        print("submitted")
    """)
    with cluster.client(timeout=20) as client:
        client.submit_job(TitanJob("parent", parent))
        assert client.wait("parent", timeout=60) == "COMPLETED", client.fetch_logs("parent")
        assert client.wait("child", timeout=60) == "COMPLETED"
        assert client.store_get("seen-by") == "parent"
        assert "child ran" in client.fetch_logs("child")
    # its key died with its attempt: as a client it is shut out, as a worker it was never let in
    with TitanClient(port=cluster.port, timeout=SHORT, keys=stolen) as thief:
        with pytest.raises((MasterUnreachable, AccessDenied)):
            thief.store_put("k", "v")
    cluster.start_worker(WorkerSpec("thief", ["LOOT"], extra_args=("--keys", stolen)))
    with cluster.client() as client:
        client.submit_job(TitanJob("lure", "/bin/true", requirement="LOOT"))
        wait_until(lambda: "refused an unknown key" in master_log(cluster), what="the thief to be refused")
        assert [w["name"] for w in client.stats()["workers"]] == ["w1"]
        assert client.get_job_status("lure") == "QUEUED" and client.store_get("k") is None


def test_a_running_jobs_key_opens_no_worker_socket(make_cluster, key_dir, script, tmp_path):
    """Even while its attempt runs, a job's key cannot register a worker (nor read another job's script)."""
    cluster = make_cluster(WorkerSpec("w1", slots=2), keys=key_dir)
    gate = str(tmp_path / "gate")
    thief = script("thief.py", f"""
        import os, subprocess, sys, time
        worker = subprocess.Popen([sys.executable, "-m", "titan.worker", "--name", "fake", "--cap", "LOOT",
                                   "--keys", os.environ["TITAN_KEYS"]])
        while not os.path.exists({gate!r}):
            time.sleep(0.05)
        worker.terminate()
        worker.wait(10)
    """)
    with cluster.client() as client:
        client.submit_job(TitanJob("thief", thief))
        client.submit_job(TitanJob("victim", "/bin/true", requirement="LOOT", args="--password hunter2"))
        wait_until(lambda: "refused job:" in master_log(cluster) and "on the workers socket" in master_log(cluster),
                   what="the job's key to be refused on the workers socket")
        assert [w["name"] for w in client.stats()["workers"]] == ["w1"]
        assert client.get_job_status("victim") == "QUEUED"
        open(gate, "w").close()
        assert client.wait("thief", timeout=60) == "COMPLETED"


# ----------------------------------------------------------------- who is shut out

def foreign_keys(tmp_path, key_dir: str, kind: str) -> str:
    """A bundle the master must refuse: `wrong-server` trusts another master; `unknown` is a key the
    master never issued, though it names the right master."""
    other = str(tmp_path / "other-keys")
    security.init_key_dir(other)
    path = bundle(other, "client", "client")
    if kind == "unknown":
        shutil.copy(os.path.join(key_dir, "master", "master.key"), os.path.join(path, "master.key"))
    return path


@pytest.mark.parametrize("kind", ["no keys", "wrong server key", "unknown key"])
def test_clients_without_a_trusted_key_can_do_nothing(make_cluster, key_dir, tmp_path, kind):
    cluster = make_cluster(WorkerSpec("w1"), keys=key_dir)
    keys = None if kind == "no keys" else foreign_keys(tmp_path, key_dir, kind.split()[0])
    with TitanClient(port=cluster.port, timeout=SHORT, keys=keys) as intruder:
        with pytest.raises(MasterUnreachable):
            intruder.submit_job(TitanJob("evil", "/bin/true"))
        with pytest.raises(MasterUnreachable):
            intruder.store_get("anything")
        with pytest.raises(MasterUnreachable):
            intruder.events()
    with cluster.client() as client:
        assert sum(client.stats()["jobs_by_state"].values()) == 0
        assert client.store_keys() == []


def test_a_client_key_cannot_register_as_a_worker(make_cluster, key_dir):
    cluster = make_cluster(WorkerSpec("w1"), keys=key_dir)
    cluster.start_worker(WorkerSpec("impostor", ["SECRET_DATA"],
                                    extra_args=("--keys", bundle(key_dir, "client", "client"))))
    with cluster.client() as client:
        client.submit_job(TitanJob("lure", "/bin/true", requirement="SECRET_DATA"))
        wait_until(lambda: "refused client:client on the workers socket" in master_log(cluster))
        time.sleep(1.0)   # the impostor has had many reconnects by now
        assert [w["name"] for w in client.stats()["workers"]] == ["w1"]
        assert client.get_job_status("lure") == "QUEUED"
    with open(os.path.join(cluster.log_dir, "impostor.log")) as impostor_log:
        assert "the master refused this worker's key" in impostor_log.read()


def test_a_worker_key_acts_as_nothing_but_a_worker(make_cluster, key_dir):
    cluster = make_cluster(WorkerSpec("w1"), keys=key_dir)
    worker_keys = bundle(key_dir, "worker", "worker")
    with TitanClient(port=cluster.port, timeout=10, keys=worker_keys) as stolen:
        with pytest.raises(AccessDenied, match="worker key"):
            stolen.submit_job(TitanJob("evil", "/bin/true"))
        with pytest.raises(AccessDenied, match="worker key"):
            stolen.store_put("k", "v")
    with TitanClient(port=cluster.port, timeout=SHORT, keys=worker_keys) as stolen:
        with pytest.raises(MasterUnreachable):   # no events either: the handshake is refused
            stolen.events(topics=["job."])
    with cluster.client() as client:
        assert client.store_keys() == []


def test_a_deleted_public_key_stops_working(make_cluster, key_dir):
    cluster = make_cluster(WorkerSpec("w1"), keys=key_dir)
    security.issue(key_dir, security.CLIENT, "alice")
    with TitanClient(port=cluster.port, timeout=10, keys=bundle(key_dir, "client", "alice")) as alice:
        assert alice.ping()["seq"] >= 0
        os.remove(os.path.join(key_dir, "clients", "alice.key"))
        # already connected: the next request is refused once the master has re-read the folder
        wait_until(lambda: _denied(alice.ping))
    with TitanClient(port=cluster.port, timeout=SHORT, keys=bundle(key_dir, "client", "alice")) as again:
        with pytest.raises(MasterUnreachable):
            again.ping()
    assert "refused an unknown key" in master_log(cluster)


def _denied(call) -> bool:
    try:
        call()
    except AccessDenied:
        return True
    return False


def test_a_revoked_worker_is_dropped_and_gets_no_more_jobs(make_cluster, key_dir, script):
    cluster = make_cluster(WorkerSpec("w1"), keys=key_dir)
    with cluster.client() as client:
        os.remove(os.path.join(key_dir, "workers", "worker.key"))
        wait_until(lambda: client.stats()["workers"] == [])
        client.submit_job(TitanJob("after", script("after.py", "print(1)\n")))
        time.sleep(1.0)
        assert client.get_job_status("after") == "QUEUED"
    assert "was revoked" in master_log(cluster)


# ----------------------------------------------------------------- what the wire shows

class Relay(threading.Thread):
    """Forwards TCP connections from a local port to the master's, recording every byte either way."""

    def __init__(self, listen_port: int, target_port: int):
        super().__init__(daemon=True)
        self.target_port = target_port
        self.server = socket.create_server(("127.0.0.1", listen_port))
        self.recorded = bytearray()
        self.stopping = threading.Event()

    def run(self) -> None:
        selector = selectors.DefaultSelector()
        selector.register(self.server, selectors.EVENT_READ)
        while not self.stopping.is_set():
            for key, _ in selector.select(0.05):
                if key.fileobj is self.server:
                    near, _ = self.server.accept()
                    far = socket.create_connection(("127.0.0.1", self.target_port))
                    selector.register(near, selectors.EVENT_READ, far)
                    selector.register(far, selectors.EVENT_READ, near)
                    continue
                data = key.fileobj.recv(65536)
                if not data:
                    for end in (key.fileobj, key.data):
                        selector.unregister(end)
                        end.close()
                    continue
                self.recorded += data
                key.data.sendall(data)
        for key in list(selector.get_map().values()):
            key.fileobj.close()

    def stop(self) -> None:
        self.stopping.set()
        self.join(5)


@pytest.mark.parametrize("with_keys", [True, False])
def test_curve_hides_a_submitted_script_from_the_wire(make_cluster, key_dir, script, with_keys):
    cluster = make_cluster(WorkerSpec("w1"), keys=key_dir if with_keys else None)
    marker = "PRINT-THIS-SECRET-7f3a9c"
    job = script("secret.py", f"print({marker!r})\n")
    relay_port = free_port_block("127.0.0.1", 4)
    relay = Relay(relay_port, cluster.port)
    relay.start()
    try:
        with TitanClient(port=relay_port, timeout=20, keys=key_dir if with_keys else None) as client:
            client.submit_job(TitanJob("secret", job))
    finally:
        relay.stop()
    assert len(relay.recorded) > len(marker), "nothing went through the relay"
    assert (marker.encode() in relay.recorded) is not with_keys
    with cluster.client() as client:
        assert client.wait("secret", timeout=60) == "COMPLETED"
        assert marker in client.fetch_logs("secret")


# ----------------------------------------------------------------- the safe default bind

def test_a_master_refuses_a_public_address_without_keys():
    port = free_port_block("127.0.0.1", 4)
    result = subprocess.run([sys.executable, "-m", "titan.master", "--host", "0.0.0.0", "--port", str(port)],
                            capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert result.returncode == 2
    assert "titan keys init" in result.stderr and "--insecure" in result.stderr
    assert "listening" not in result.stdout


def test_a_master_with_a_missing_key_directory_says_what_to_run(tmp_path):
    port = free_port_block("127.0.0.1", 4)
    missing = str(tmp_path / "nowhere")
    result = subprocess.run([sys.executable, "-m", "titan.master", "--port", str(port), "--keys", missing],
                            capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert result.returncode == 1
    assert f"titan keys init {missing}" in result.stderr


# ----------------------------------------------------------------- every limit, once

LIMIT_FLAGS = ("--max-jobs-per-dag", "3", "--max-script-bytes", "2000", "--max-store-value-bytes", "10",
               "--max-store-keys", "2", "--max-log-bytes", "1000", "--max-submits-per-second", "0.5",
               "--max-message-bytes", "20000")


def refused_submission(submit, flag: str) -> LimitExceeded:
    """Submit until refused for `flag`; a refusal for the submission rate means: try again a bit later."""
    deadline = time.monotonic() + 30
    while True:
        with pytest.raises(LimitExceeded) as caught:
            submit()
        if "--max-submits-per-second" not in str(caught.value) or time.monotonic() > deadline:
            assert flag in str(caught.value)
            return caught.value
        time.sleep(0.25)


def test_every_limit_is_a_clear_error_and_nothing_else_breaks(make_cluster, script):
    cluster = make_cluster(WorkerSpec("w1"), master_args=LIMIT_FLAGS)
    chatty = script("chatty.py", "for i in range(500):\n    print(f'line {i:04d}')\n")
    big = script("big.py", "x = 1\n" + "#" * 3000 + "\n")
    huge = script("huge.py", "#" * 30000 + "\n")
    with cluster.client(timeout=20) as client:
        refused_submission(lambda: client.submit_dag("wide", [TitanJob(f"j{i}", chatty) for i in range(4)]),
                           "--max-jobs-per-dag")
        refused_submission(lambda: client.submit_job(TitanJob("big", big)), "--max-script-bytes")
        with pytest.raises(RequestRejected, match="--max-message-bytes"):
            client.submit_job(TitanJob("huge", huge))
        with pytest.raises(LimitExceeded, match="--max-store-value-bytes"):
            client.store_put("k", "x" * 11)
        client.store_put("a", "1")
        client.store_put("b", "2")
        with pytest.raises(LimitExceeded, match="--max-store-keys"):
            client.store_put("c", "3")
        wait_until(lambda: not _rate_limited(lambda: client.submit_job(TitanJob("chatty", chatty))))
        with pytest.raises(LimitExceeded, match="--max-submits-per-second"):
            client.submit_job(TitanJob("too-soon", chatty))   # the previous one took this second's turn
        assert client.wait("chatty", timeout=60) == "COMPLETED"
        logs = client.fetch_logs("chatty")
        assert logs.startswith("[titan: ") and "--max-log-bytes" in logs.splitlines()[0]
        assert logs.endswith("line 0499\n") and "line 0000" not in logs
        assert len(logs.split("\n", 1)[1]) == 1000
        assert client.store_get("a") == "1" and client.ping()["seq"] > 0
        assert client.stats()["jobs_by_state"]["COMPLETED"] == 1


def _rate_limited(call) -> bool:
    try:
        call()
    except LimitExceeded as exc:
        if "--max-submits-per-second" in str(exc):
            return True
        raise
    return False


def test_master_sockets_fail_closed_when_no_authenticator_answers(key_dir):
    """libzmq lets any CURVE key in when no ZAP handler answers, unless told to enforce it."""
    import zmq

    keys = security.load_server_keys(key_dir)
    stranger = security.Identity(*zmq.curve_keypair(), server_public=keys.public)
    ctx = zmq.Context()
    try:
        server = ctx.socket(zmq.ROUTER)
        keys.apply(server, "clients")
        port = server.bind_to_random_port("tcp://127.0.0.1")
        client = ctx.socket(zmq.DEALER)
        stranger.apply(client)
        client.connect(f"tcp://127.0.0.1:{port}")
        client.send(b"let me in", zmq.NOBLOCK)   # queued until a handshake that must never complete
        assert not server.poll(1500)
    finally:
        ctx.destroy(linger=0)


def test_a_revoked_job_keys_open_event_subscription_stops_receiving(make_cluster, key_dir, script, tmp_path):
    cluster = make_cluster(WorkerSpec("w1", slots=2), keys=key_dir)
    stolen, go = str(tmp_path / "stolen"), str(tmp_path / "go")
    holder = script("holder.py", f"""
        import os, shutil, time
        shutil.copytree(os.environ["TITAN_KEYS"], {stolen!r} + ".part")
        os.rename({stolen!r} + ".part", {stolen!r})   # whole, or not there: the test reads it at once
        while not os.path.exists({go!r}):
            time.sleep(0.05)
    """)
    later = script("later.py", "print('later')\n")
    with cluster.client(timeout=20) as client:
        client.submit_job(TitanJob("holder", holder))
        wait_until(lambda: os.path.isdir(stolen), 60, "the job's keys")
        with TitanClient(port=cluster.port, timeout=20, keys=stolen) as thief, \
                thief.events(["job."], timeout=10) as events, client.events(["job."], timeout=10) as legitimate:
            time.sleep(0.5)   # the subscription reaches the master
            open(go, "w").close()
            assert client.wait("holder", timeout=60) == "COMPLETED"
            client.submit_job(TitanJob("later", later))
            assert client.wait("later", timeout=60) == "COMPLETED"
            seen = []
            with pytest.raises(AccessDenied, match="revoked: the job attempt it was given to has ended"):
                for event in events:
                    seen.append((event["job_id"], event["state"]))
            with pytest.raises(AccessDenied):   # and it stays ended
                events.get(0.1)
            # it received while the attempt ran (the attempt's own end, published before the key's
            # revocation), then the notice: nothing of later, and no hang
            assert ("holder", "COMPLETED") in seen and not [job for job, _ in seen if job == "later"]
            assert _sees(legitimate, "later", "COMPLETED"), "the client's own subscription is untouched"


def test_a_job_receives_events_while_its_attempt_runs(make_cluster, key_dir, script, tmp_path):
    """An agent (a job that watches events and submits more work) keeps its events for its whole attempt."""
    cluster = make_cluster(WorkerSpec("w1", slots=2), keys=key_dir)
    ready = str(tmp_path / "ready")
    child = script("child.py", "print('child ran')\n")
    agent = script("agent.py", f"""
        from titan_sdk import TitanClient, TitanJob
        client = TitanClient(timeout=20)
        with client.events(["job."], timeout=30) as events:
            open({ready!r}, "w").close()
            for event in events:
                if event["job_id"] == "outside" and event["state"] == "COMPLETED":
                    break
            else:
                raise SystemExit("no event for the job submitted from outside")
            client.submit_job(TitanJob("child", {child!r}))
            for event in events:
                if event["job_id"] == "child" and event["state"] == "COMPLETED":
                    print("agent saw child complete")
                    break
            else:
                raise SystemExit("no event for its own child")
    """)
    with cluster.client(timeout=20) as client:
        client.submit_job(TitanJob("agent", agent))
        wait_until(lambda: os.path.exists(ready), 60, "the agent to subscribe")
        client.submit_job(TitanJob("outside", "/bin/true"))
        assert client.wait("agent", timeout=60) == "COMPLETED", client.fetch_logs("agent")
        assert "agent saw child complete" in client.fetch_logs("agent")
        assert client.wait("child", timeout=30) == "COMPLETED"


def test_a_deleted_client_keys_event_subscription_stops_receiving(make_cluster, key_dir, script):
    cluster = make_cluster(WorkerSpec("w1"), keys=key_dir)
    security.issue(key_dir, security.CLIENT, "alice")
    with cluster.client(timeout=20) as client, \
            TitanClient(port=cluster.port, timeout=10, keys=bundle(key_dir, "client", "alice")) as alice, \
            alice.events(["job."], timeout=15) as alices, client.events(["job."], timeout=10) as clients:
        client.submit_job(TitanJob("before", "/bin/true"))
        assert client.wait("before", timeout=60) == "COMPLETED"
        assert _sees(alices, "before", "COMPLETED")
        os.remove(os.path.join(key_dir, "clients", "alice.key"))
        with pytest.raises(AccessDenied, match="deleted from the master's key directory"):
            alices.get(15)   # the master re-reads the folder within a second and ends the subscription
        client.submit_job(TitanJob("after", "/bin/true"))
        assert client.wait("after", timeout=60) == "COMPLETED"
        assert _sees(clients, "after", "COMPLETED"), "another key's subscription is untouched"


def _sees(stream, job_id: str, state: str, quiet: float = 10) -> bool:
    """Whether `stream` brings that job's event before `quiet` seconds pass without any event."""
    for event in iter(lambda: stream.get(quiet), None):
        if (event.get("job_id"), event.get("state")) == (job_id, state):
            return True
    return False
