"""The master's limits as pure objects (store, logs, rate, submissions), and the key helpers that need no sockets."""

from __future__ import annotations

import os

import pytest
from zmq.utils import z85

from titan.core.errors import LimitExceeded
from titan.core.limits import Limits, RateLimiter
from titan.core.logs import JobLogs
from titan.core.store import Store
from titan.net import security


def test_store_refuses_a_value_over_the_limit_and_keeps_the_old_one():
    store = Store(max_value_bytes=10, max_keys=100)
    store.put("k", "small")
    with pytest.raises(LimitExceeded, match="--max-store-value-bytes") as caught:
        store.put("k", "x" * 11)
    assert "11 bytes" in str(caught.value)
    assert store.get("k") == "small"
    with pytest.raises(LimitExceeded, match="--max-store-value-bytes"):
        store.sadd("s", "é" * 6)   # 12 bytes in UTF-8, though 6 characters
    assert store.keys() == ["k"]


def test_store_refuses_new_keys_when_full_but_still_changes_existing_ones():
    store = Store(max_value_bytes=100, max_keys=2)
    store.put("a", "1")
    store.sadd("b", "m")
    for add_one_more in (lambda: store.put("c", "1"), lambda: store.incr("c"), lambda: store.sadd("c", "m")):
        with pytest.raises(LimitExceeded, match="--max-store-keys"):
            add_one_more()
    assert store.incr("a", 5) == 6
    assert store.sadd("b", "n") == 1
    store.delete("a")
    assert store.put("c", "now there is room") == "OK"
    assert store.keys() == ["b", "c"]


def test_logs_keep_the_newest_bytes_and_say_how_much_was_dropped():
    logs = JobLogs(max_bytes=100)
    for i in range(50):
        logs.append("job", 1, "stdout", f"line {i:03d}\n")   # 9 bytes each, 450 in all
    text = logs.text("job")
    marker, kept = text.split("\n", 1)
    assert "350 earlier bytes of output dropped" in marker and "--max-log-bytes" in marker
    assert len(kept.encode()) == 100
    assert kept.endswith("line 049\n") and "line 038" not in kept


def test_logs_under_the_limit_are_untouched_and_a_new_run_starts_empty():
    logs = JobLogs(max_bytes=1000)
    logs.append("job", 1, "stdout", "hello\n")
    logs.append("job", 2, "stderr", "again\n")
    assert logs.text("job") == "--- attempt 1 ---\nhello\n--- attempt 2 ---\nagain\n"
    logs.reset("job")
    assert logs.text("job") == ""


def test_rate_limiter_allows_a_burst_then_refuses_until_time_refills_it():
    limiter = RateLimiter(2, "submissions", "--max-submits-per-second")
    limiter.take("alice", now=10.0)
    limiter.take("alice", now=10.0)
    with pytest.raises(LimitExceeded, match="--max-submits-per-second"):
        limiter.take("alice", now=10.1)
    limiter.take("bob", now=10.1)       # each sender has a bucket of its own
    limiter.take("alice", now=10.7)     # 0.6 s at 2/s refilled more than one
    with pytest.raises(LimitExceeded):
        limiter.take("alice", now=10.7)


def test_submission_limits_name_their_flags():
    limits = Limits(jobs_per_dag=3, script_bytes=10)
    limits.check_job_count(3)
    with pytest.raises(LimitExceeded, match="4 jobs .* 3 jobs per DAG .*--max-jobs-per-dag"):
        limits.check_job_count(4)
    limits.check_script("j", 10)
    with pytest.raises(LimitExceeded, match="job 'j'.*11 bytes.*--max-script-bytes"):
        limits.check_script("j", 11)


def test_job_key_pairs_are_bound_to_job_run_attempt_and_master():
    import zmq

    seed = os.urandom(32)
    public, secret = security.job_keypair(seed, "train.v2", 7, 3)
    assert security.job_keypair(seed, "train.v2", 7, 3) == (public, secret), "a restarted master derives it again"
    assert zmq.curve_public(secret) == public and len(secret) == 40
    others = {security.job_keypair(seed, "train.v2", 8, 3), security.job_keypair(seed, "train.v2", 7, 4),
              security.job_keypair(seed, "train.v3", 7, 3), security.job_keypair(os.urandom(32), "train.v2", 7, 3)}
    assert (public, secret) not in others and len(others) == 4


def test_key_ring_forgets_a_deleted_key(tmp_path):
    root = str(tmp_path / "keys")
    security.init_key_dir(root)
    security.issue(root, security.CLIENT, "alice")
    ring = security.KeyRing(root)
    alice = security.load_identity(os.path.join(root, "issued", "client-alice"), security.CLIENT)
    assert ring.user(alice.public) == "client:alice"
    assert ring.is_current("worker:worker") and not ring.is_current("client:bob")
    os.remove(os.path.join(root, "clients", "alice.key"))
    assert ring.user(alice.public) is None
    assert not ring.is_current("client:alice")
    assert len(z85.decode(alice.public)) == 32   # a real CURVE key, z85 as zmq hands it to the callback


def test_only_loopback_addresses_count_as_safe():
    assert security.is_loopback("127.0.0.1") and security.is_loopback("localhost") and security.is_loopback("::1")
    for host in ("0.0.0.0", "*", "10.1.2.3", "example.org", "::"):
        assert not security.is_loopback(host)
