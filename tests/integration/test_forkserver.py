"""The fork server alone: every launched job's exit code comes back to the job that earned it."""

from __future__ import annotations

import os

import pytest

from titan.worker.forkserver import ForkServer


@pytest.fixture
def fork_server():
    server = ForkServer()
    yield server
    server.close()


def launch(server, tmp_path, name: str, code: str):
    script = tmp_path / f"{name}.py"
    script.write_text(code)
    out_read, out_write = os.pipe()
    err_read, err_write = os.pipe()
    try:
        process = server.launch([str(script)], str(tmp_path), dict(os.environ), out_write, err_write)
    finally:
        os.close(out_write)
        os.close(err_write)
    return process, out_read, err_read


def test_many_quick_jobs_each_get_their_own_exit_code(fork_server, tmp_path):
    """Jobs that exit before launch() returns, and exits interleaved with later launches, never swap codes."""
    launched = []
    for n in range(150):
        process, out_read, err_read = launch(fork_server, tmp_path, f"j{n}", f"raise SystemExit({n})\n")
        launched.append((n, process, out_read, err_read))
        fork_server.pump()
    for n, process, out_read, err_read in launched:
        assert process.wait(timeout=20) == n, f"job {n} got exit code {process.returncode}"
        os.close(out_read)
        os.close(err_read)


def test_output_reaches_the_pipes(fork_server, tmp_path):
    process, out_read, err_read = launch(fork_server, tmp_path, "talk",
                                         "import sys\nprint('out')\nprint('err', file=sys.stderr)\n")
    assert process.wait(timeout=20) == 0
    assert os.read(out_read, 100) == b"out\n" and os.read(err_read, 100) == b"err\n"
    os.close(out_read)
    os.close(err_read)


def test_a_reused_pid_never_carries_an_exit_to_another_job():
    """pid_max is often 32,768: after enough jobs a pid comes back. Replay the server's messages for two
    jobs that both got pid 500 and both ended before launch() returned."""
    server = ForkServer.__new__(ForkServer)
    server._started, server._processes, server._early_exits, server._next_id = {}, {}, {}, 0
    replies = iter([[{"id": 1, "pid": 500}, {"id": 1, "code": 3}], [{"id": 2, "pid": 500}, {"id": 2, "code": 4}]])

    def pump_until(done, timeout):
        for message in next(replies):
            server._on_message(message)
        return done()

    server.pump_until = pump_until
    server.channel = None
    import titan.worker.forkserver as forkserver
    original_send, forkserver._send = forkserver._send, lambda *args, **kwargs: None
    try:
        first = server.launch(["a.py"], "/", {}, 0, 0)
        second = server.launch(["b.py"], "/", {}, 0, 0)
    finally:
        forkserver._send = original_send
    assert (first.returncode, second.returncode) == (3, 4)
    assert server._processes == {} and server._early_exits == {}
