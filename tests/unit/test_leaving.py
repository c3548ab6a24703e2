"""The fork server and the launcher leave once (reaper.leave): the worker's SIGTERM arriving while they already leave
(their channel closed first) does not start it again in the middle."""

from __future__ import annotations

import os
import signal

import pytest

from titan.worker import reaper


@pytest.mark.timeout(30)
def test_a_sigterm_while_leaving_does_not_interrupt_the_leaving(tmp_path):
    calls = tmp_path / "calls"
    pid = os.fork()
    if pid == 0:
        try:
            signal.signal(signal.SIGTERM, lambda *_: reaper.leave())   # as serve() sets it

            def kill_leftovers(**_):
                with open(calls, "a") as record:
                    record.write("x")
                os.kill(os.getpid(), signal.SIGTERM)   # the worker's, arriving mid-way
                for _ in range(1000):                  # where its handler would run
                    pass

            reaper.kill_leftovers = kill_leftovers
            reaper.leave()
        finally:
            os._exit(3)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert calls.read_text() == "x"   # once, not again from inside
