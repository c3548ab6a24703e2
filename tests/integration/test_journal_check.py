"""`titan journal check`: a master's journal verified offline, as the titan command runs it."""

from __future__ import annotations

import os
import subprocess

from tests.conftest import TITAN
from titan.cluster import WorkerSpec
from titan_sdk import TitanJob

FILE = "titan.db"


def check(data_dir) -> subprocess.CompletedProcess:
    return subprocess.run([TITAN, "journal", "check", "--data-dir", str(data_dir)], capture_output=True,
                          text=True, timeout=60)


def test_journal_check_on_a_real_masters_journal(make_cluster, script, tmp_path):
    data_dir = tmp_path / "data"
    cluster = make_cluster(WorkerSpec("w1", slots=1), data_dir=str(data_dir))
    with cluster.client(timeout=15) as client:
        client.submit_job(TitanJob("hello", script("hello.py", "print('hello')")))
        assert client.wait("hello", timeout=30) == "COMPLETED"
        client.store_put("colour", "blue-0001")
        running = check(data_dir)
        assert running.returncode == 1 and "in use by a running master" in running.stderr, running
    cluster.stop()
    before = sorted(os.listdir(data_dir)), (data_dir / FILE).read_bytes()
    sound = check(data_dir)
    assert sound.returncode == 0, sound
    assert f"{data_dir / FILE}: OK" in sound.stdout and "1 jobs" in sound.stdout and "none lost" in sound.stdout
    assert (sorted(os.listdir(data_dir)), (data_dir / FILE).read_bytes()) == before, "the check changed the journal"

    path = data_dir / FILE
    path.write_bytes(path.read_bytes().replace(b"blue-0001", b"blue-0002"))
    damaged = check(data_dir)
    assert damaged.returncode == 1, damaged
    assert f"{path}: DAMAGED" in damaged.stdout and "table store" in damaged.stdout and "checksum" in damaged.stdout


def test_journal_check_without_a_journal_says_where_it_looked(tmp_path):
    missing = check(tmp_path)
    assert missing.returncode == 2 and f"no journal at {tmp_path / FILE}" in missing.stderr
