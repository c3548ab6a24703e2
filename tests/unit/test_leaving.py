"""The fork server and the launcher leave once: the worker's SIGTERM arriving while they already leave
(their channel closed first) does not start it again in the middle."""

from __future__ import annotations

import os
import signal

import pytest

from titan.worker import forkserver, launcher


@pytest.mark.parametrize("starter", [forkserver, launcher], ids=["fork server", "launcher"])
def test_a_sigterm_while_leaving_does_not_interrupt_the_leaving(starter, tmp_path):
    calls = tmp_path / "calls"
    pid = os.fork()
    if pid == 0:
        try:
            signal.signal(signal.SIGTERM, lambda *_: starter._leave())   # as serve() sets it

            def kill_leftovers(**_):
                with open(calls, "a") as record:
                    record.write("x")
                os.kill(os.getpid(), signal.SIGTERM)   # the worker's, arriving mid-way
                for _ in range(1000):                  # where its handler would run
                    pass

            starter.reaper.kill_leftovers = kill_leftovers
            starter._leave()
        finally:
            os._exit(3)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert calls.read_text() == "x"   # once, not again from inside
