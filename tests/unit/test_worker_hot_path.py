"""The per-job shortcuts of the worker and its pool members give what the long way gave: messages read
into one reused buffer, workspace names, DAG folders, and the signal handlers a member puts back."""

from __future__ import annotations

import os
import signal
import socket

import pytest

from titan.worker import executor, wire
from titan.worker.pool import Baseline, JobSnapshot
from titan.worker.workspaces import safe_name


def slow_safe_name(text: str) -> str:
    """safe_name as it was written first, character by character."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)[:40]


@pytest.fixture
def channel():
    ends = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    yield ends
    for end in ends:
        end.close()


def test_messages_of_any_size_in_a_row_come_out_whole_from_the_reused_buffer(channel):
    sender, receiver = channel
    for size in [100_000, 3, 70_000, 0, 5]:   # a short one after a long one: nothing of the long one left
        wire.send(sender, {"data": b"x" * size, "size": size})
        message, fds = wire.receive(receiver)
        assert message == {"data": b"x" * size, "size": size} and fds == []


def test_descriptors_arrive_with_their_message_and_a_closed_end_reads_as_none(channel):
    sender, receiver = channel
    read_end, write_end = os.pipe()
    try:
        wire.send(sender, {"id": 7}, [write_end])
        message, fds = wire.receive(receiver, 1)
        assert message == {"id": 7} and len(fds) == 1
        os.write(fds[0], b"through the passed descriptor")
        os.close(fds[0])
        assert os.read(read_end, 100) == b"through the passed descriptor"
    finally:
        os.close(read_end)
        os.close(write_end)
    sender.close()
    assert wire.receive(receiver) == (None, [])


@pytest.mark.parametrize("job_id", ["s1_3_44", "a/b", "é日本", "x" * 50, "a b.c-d_e", "", "ab\u00b2",
                                    "..", "a\nb", "Ω" + "a" * 45, "TAB\there"])
def test_workspace_names_are_what_the_character_by_character_rule_gives(job_id):
    assert safe_name(job_id) == slow_safe_name(job_id)


def test_a_dag_folder_is_named_once_and_made_again_if_it_was_removed(tmp_path):
    first = executor.dag_dir(str(tmp_path), "DAG-a/b")
    assert os.path.isdir(first) and os.path.dirname(first) == os.path.join(str(tmp_path), "dags")
    os.rmdir(first)
    assert executor.dag_dir(str(tmp_path), "DAG-a/b") == first and os.path.isdir(first)
    assert executor.dag_dir(str(tmp_path), "DAG-c") != first
    assert executor.dag_dir(str(tmp_path), None) == ""


def test_a_member_puts_back_a_handler_its_job_changed_and_leaves_the_others(monkeypatch):
    def own_handler(*_):
        pass

    before = signal.getsignal(signal.SIGUSR1)
    baseline = Baseline()
    try:
        snapshot = JobSnapshot(baseline)
        snapshot.give_environ({}, {})
        signal.signal(signal.SIGUSR1, own_handler)
        touched = []
        real_signal = signal.signal
        monkeypatch.setattr(signal, "signal", lambda sig, handler: touched.append(sig) or real_signal(sig, handler))
        snapshot.restore()
        assert signal.getsignal(signal.SIGUSR1) is before
        assert touched == [signal.SIGUSR1]   # only what changed is set again

        touched.clear()
        JobSnapshot(baseline).restore()      # a job that changed none: none set
        assert touched == []
    finally:
        signal.signal(signal.SIGUSR1, before)
