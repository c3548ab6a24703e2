"""The launcher: a small process that starts every job the worker runs as a new program (a `.sh` job,
any other executable, a `.py` job with isolation="process"), and keeps hold of everything it starts.

Why not the fork server: a fork costs in proportion to the forking process's memory (its page tables
are copied, then every page either side writes before the child's exec is copied again, and the exec
tears the copy down), and the fork server is a warm Python holding titan_sdk, zmq and what --preload
names. This is a fresh interpreter that imports only what it needs here (os, signal, socket, select,
ctypes, msgpack), about a third of the fork server's size; the child runs a few lines and execs.

It speaks the fork server's protocol (forkserver.py, whose worker side, `Launcher`, drives it):

  launcher -> worker: {"ready", "error"} once it is up
  worker -> launcher: {"id", "argv", "cwd", "env", "name"} with the job's stdout and stderr pipe ends
                      attached ("env": what the job's environment adds to the worker's, which the
                      launcher inherited; "name": the script's, for a start that fails)
  launcher -> worker: {"id", "pid"} once started; {"id", "code"} when the job ends

and keeps the fork server's guarantees (reaper.py): each job leads its own session (a kill reaches its
group), is a child subreaper (what it starts stays in its tree even after setsid and a double fork)
and gets SIGKILL if the launcher dies (PR_SET_PDEATHSIG). The launcher leads a session of its own and is
a subreaper too: what a job left running when it ended comes back to it and is killed before the job's
exit is reported; when the worker goes (its channel closes, or SIGTERM) it kills every job and leaves.
A launcher a job killed is replaced by the worker, which fails the jobs it ran (loop.py).
"""

from __future__ import annotations

import gc
import os
import select
import signal
import socket
import sys
from collections.abc import Sequence

from titan.worker import reaper
from titan.worker.wire import receive, send

FAILED_TO_START = 127   # as a shell says it


def spawn(channel: socket.socket, label: Sequence[str] = ()) -> int:
    """Start a launcher on this end of a socket pair, in a session of its own; its pid. `label` goes on
    its command line (after the channel's descriptor), to say whose launcher it is."""
    os.set_inheritable(channel.fileno(), True)
    try:
        code = "import sys; from titan.worker.launcher import main; main(sys.argv[1:])"
        return os.posix_spawn(sys.executable, [sys.executable, "-c", code, str(channel.fileno()), *label],
                              dict(os.environ), setsid=True)
    finally:
        os.set_inheritable(channel.fileno(), False)


def main(argv: Sequence[str]) -> None:
    """The launcher's entry point (see spawn): serve the worker on the channel argv[0] names."""
    channel = socket.socket(fileno=int(argv[0]))
    os.set_inheritable(channel.fileno(), False)
    serve(channel)


def serve(channel: socket.socket) -> None:
    """Start a job per request; report each one's pid and exit code. Returns never: it exits when the
    worker is gone."""
    reaper.become_subreaper()
    send(channel, {"ready": True, "error": None})
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_write, False)
    signal.set_wakeup_fd(wake_write)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    signal.signal(signal.SIGINT, signal.SIG_IGN)           # the worker decides when its jobs stop
    signal.signal(signal.SIGTERM, lambda *_: reaper.leave())     # the worker is stopping, or has gone
    starter = _Starter(channel)
    gc.freeze()   # a collection writes to every object it scans: after a fork, each page it writes is copied
    try:
        while True:
            readable, _, _ = select.select([channel, wake_read], [], [])
            if wake_read in readable:
                os.read(wake_read, 4096)
            if channel in readable and not starter.take_request():
                reaper.leave()
            starter.report_exits()
    except ConnectionError:   # a worker SIGKILLed with our reports unread: a send fails before any EOF is read
        reaper.leave()



class _Starter:
    def __init__(self, channel: socket.socket) -> None:
        self.channel = channel
        self.environ = dict(os.environ)              # the worker's: every job's starts from it
        self.stdin = os.open(os.devnull, os.O_RDONLY)
        self.jobs: dict[int, int] = {}               # pid -> request id, for jobs not yet reaped

    def take_request(self) -> bool:
        request, fds = receive(self.channel, 2)
        if request is None:
            return False
        environment = {**self.environ, **request["env"]}
        launcher_pid = os.getpid()
        pid = os.fork()
        if pid == 0:
            _become_job(request, fds, self.stdin, environment, launcher_pid)
        self.jobs[pid] = request["id"]
        for fd in fds:
            os.close(fd)
        send(self.channel, {"id": request["id"], "pid": pid})
        return True

    def report_exits(self) -> None:
        for pid, code in reaper.ended_children():
            request_id = self.jobs.pop(pid, None)
            if request_id is not None:
                # What the job left running came back to this subreaper when it ended: it goes first,
                # so its output pipes close and the job is over when the worker hears of its end.
                reaper.kill_leftovers(spare=self.jobs, one_thread=True)   # it starts no thread
                send(self.channel, {"id": request_id, "code": code})


def _become_job(request: dict, fds, stdin: int, environment: dict, launcher_pid: int) -> None:
    """In the forked child: set up what a job needs, then execute it, as subprocess would start it
    (stdin /dev/null, signals Python ignores restored). Never returns."""
    try:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.setsid()
        reaper.become_subreaper()
        reaper.die_with_parent(launcher_pid)
        for target, source in ((0, stdin), (1, fds[0]), (2, fds[1])):
            os.dup2(source, target)
        for fd in fds:
            os.close(fd)
        for sig in (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGINT):   # ignored here; a new program must not
            signal.signal(sig, signal.SIG_DFL)
        os.chdir(request["cwd"])
        argv = request["argv"]
        os.execvpe(argv[0], argv, environment)
    except BaseException as exc:   # noqa: BLE001 -- whatever it was, the job's stderr says so
        message = f"titan worker: cannot start {request.get('name') or request['argv'][0]}: {exc}\n"
        try:
            os.write(2, message.encode(errors="backslashreplace"))
        finally:
            os._exit(FAILED_TO_START)
