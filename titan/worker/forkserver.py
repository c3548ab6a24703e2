"""A fork server for `.py` jobs: a warm Python (titan_sdk already imported) that forks one child per job.

Starting a fresh interpreter costs tens of milliseconds of CPU per job; forking a parent that has already
imported what jobs use costs a few. The worker starts the server before it creates its ZeroMQ context
(forking a process that holds one is unsafe) and talks to it over a Unix socket pair:

  worker -> server: {"id", "argv", "cwd", "env"} with the job's stdout and stderr pipe ends attached
  server -> worker: {"id", "pid"} once forked; {"id", "code"} when that child exits

Everything is keyed by the request id, never by pid: pids are reused (pid_max is often 32768), and an
exit reported under a pid could otherwise be taken for a later job's.

Each child becomes its own session leader (so a kill reaches its whole tree), gets the pipes as fds 1
and 2, the job's argv, cwd and environment, and runs the script with runpy as `__main__`. Exit codes,
`sys.exit`, uncaught exceptions and signals come out as they would from `python -u script.py`.
One difference remains: modules the server already imported (titan_sdk, zmq, msgpack and the standard
modules they use) are not imported again, so a job's own file named like one of them does not shadow it.
Jobs that need a pristine interpreter ask for isolation="process".
"""

from __future__ import annotations

import atexit
import io
import os
import runpy
import select
import selectors
import signal
import socket
import sys
import time
import traceback
from typing import Dict, Optional

import msgpack

MAX_MESSAGE = 1 << 20


def _send(channel: socket.socket, message: dict, fds=()) -> None:
    payload = msgpack.packb(message, use_bin_type=True)
    if fds:
        socket.send_fds(channel, [payload], list(fds))
    else:
        channel.send(payload)


# ----------------------------------------------------------------- the server (a child of the worker)

def serve(channel: socket.socket) -> None:
    """Fork a child per request; report each child's pid and exit code. Returns when the worker is gone."""
    import titan_sdk  # noqa: F401 -- warm: jobs import it, and its dependencies

    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_write, False)
    signal.set_wakeup_fd(wake_write)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    signal.signal(signal.SIGINT, signal.SIG_IGN)     # the worker decides when its jobs stop
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    selector = selectors.DefaultSelector()
    selector.register(channel, selectors.EVENT_READ)
    selector.register(wake_read, selectors.EVENT_READ)
    children: Dict[int, int] = {}   # pid -> request id, for the children not yet reaped
    while True:
        for key, _ in selector.select():
            if key.fileobj == wake_read:
                os.read(wake_read, 4096)
            elif not _fork_job(channel, (channel, wake_read, wake_write), children):
                os._exit(0)
        _report_exits(channel, children)


def _fork_job(channel: socket.socket, server_fds, children: Dict[int, int]) -> bool:
    try:
        payload, fds, _flags, _addr = socket.recv_fds(channel, MAX_MESSAGE, 2)
    except ConnectionError:
        return False
    if not payload:
        return False
    request = msgpack.unpackb(payload, raw=False)
    pid = os.fork()
    if pid == 0:
        _run_child(request, fds, server_fds)
    for fd in fds:
        os.close(fd)
    children[pid] = request["id"]
    _send(channel, {"id": request["id"], "pid": pid})
    return True


def _report_exits(channel: socket.socket, children: Dict[int, int]) -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        request_id = children.pop(pid, None)
        if request_id is not None:
            _send(channel, {"id": request_id, "code": os.waitstatus_to_exitcode(status)})


def _run_child(request: dict, fds, server_fds) -> None:
    """In the forked child: become the job, run it, exit with its code. Never returns."""
    code = 1
    try:
        _become_job(request, fds, server_fds)
        code = _run_script(request["argv"])
    finally:
        os._exit(code)


def _become_job(request: dict, fds, server_fds) -> None:
    signal.set_wakeup_fd(-1)
    for sig in (signal.SIGCHLD, signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for fd in server_fds:
        os.close(fd.fileno() if hasattr(fd, "fileno") else fd)
    os.setsid()
    stdin = os.open(os.devnull, os.O_RDONLY)
    for target, source in ((0, stdin), (1, fds[0]), (2, fds[1])):
        os.dup2(source, target)
    for fd in (stdin, *fds):
        os.close(fd)
    # Like `python -u`: every write reaches the pipe at once, so the master sees output as it happens.
    sys.stdin = io.TextIOWrapper(io.FileIO(0, "r", closefd=False))
    sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), write_through=True)
    sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), write_through=True,
                                  errors="backslashreplace")
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    sys.argv = list(request["argv"])
    sys.path[0] = os.path.dirname(os.path.abspath(request["argv"][0]))
    # A fresh interpreter would put the job's own PYTHONPATH (e.g. its project folder) right after that.
    extra = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and p not in sys.path]
    sys.path[1:1] = extra


def _run_script(argv) -> int:
    try:
        runpy.run_path(argv[0], run_name="__main__")
        code = 0
    except SystemExit as exit_request:
        code = _exit_code(exit_request.code)
    except BaseException as error:
        _print_traceback(error, argv[0])
        code = 1
    atexit._run_exitfuncs()   # a fresh interpreter would run them at exit too
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    return code


def _print_traceback(error: BaseException, script: str) -> None:
    """The traceback a fresh interpreter would print: starting at the script, not in runpy."""
    tb = error.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename != script:
        tb = tb.tb_next
    traceback.print_exception(type(error), error, tb or error.__traceback__)


def _exit_code(code) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1


# ----------------------------------------------------------------- the worker's side

class ForkedProcess:
    """A job forked by the server: enough of subprocess.Popen for the executor (pid, poll, wait)."""

    def __init__(self, server: "ForkServer", pid: int):
        self.server, self.pid, self.returncode = server, pid, None

    def poll(self) -> Optional[int]:
        return self.returncode

    def wait(self, timeout: float = 10.0) -> Optional[int]:
        self.server.pump_until(lambda: self.returncode is not None, timeout)
        return self.returncode


class ForkServer:
    def __init__(self) -> None:
        worker_end, server_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.pid = os.fork()
        if self.pid == 0:
            worker_end.close()
            serve(server_end)
            os._exit(0)
        server_end.close()
        self.channel = worker_end
        self._next_id = 0
        self._started: Dict[int, int] = {}            # request id -> pid, until launch() takes it
        self._processes: Dict[int, ForkedProcess] = {}   # request id -> its running process
        self._early_exits: Dict[int, int] = {}        # request id -> code, for exits seen inside launch()

    def fileno(self) -> int:
        return self.channel.fileno()

    def launch(self, argv, cwd: str, env: dict, stdout_fd: int, stderr_fd: int) -> ForkedProcess:
        self._next_id += 1
        request_id = self._next_id
        _send(self.channel, {"id": request_id, "argv": list(argv), "cwd": cwd, "env": env}, (stdout_fd, stderr_fd))
        if not self.pump_until(lambda: request_id in self._started, timeout=10.0):
            raise OSError("the fork server did not start the job within 10s")
        process = ForkedProcess(self, self._started.pop(request_id))
        if request_id in self._early_exits:
            process.returncode = self._early_exits.pop(request_id)
        else:
            self._processes[request_id] = process
        return process

    def pump(self) -> None:
        """Read what the server has said (without blocking): starts and exits."""
        while True:
            try:
                payload = self.channel.recv(MAX_MESSAGE, socket.MSG_DONTWAIT)
            except BlockingIOError:
                return
            if not payload:
                raise ConnectionError("the fork server has exited")
            self._on_message(msgpack.unpackb(payload, raw=False))

    def pump_until(self, done, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not done():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            select.select([self.channel], [], [], remaining)
            self.pump()
        return True

    def _on_message(self, message: dict) -> None:
        request_id = message["id"]
        if "pid" in message:
            self._started[request_id] = message["pid"]
            return
        process = self._processes.pop(request_id, None)
        if process is None:   # it ended before launch() had registered it
            self._early_exits[request_id] = message["code"]
        else:
            process.returncode = message["code"]

    def close(self) -> None:
        self.channel.close()
        try:
            os.kill(self.pid, signal.SIGTERM)
            os.waitpid(self.pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
