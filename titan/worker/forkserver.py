"""A fork server for `.py` jobs: a warm Python (titan_sdk already imported) that forks one child per job.

Starting a fresh interpreter costs tens of milliseconds of CPU per job; forking a parent that has already
imported what jobs use costs a few. The worker starts the server before it creates its ZeroMQ context
(forking a process that holds one is unsafe) and talks to it over a Unix socket pair:

  server -> worker: {"ready", "error"} once it has imported titan_sdk and what --preload names
  worker -> server: {"id", "argv", "cwd", "env"} with the job's stdout and stderr pipe ends attached ("env":
                    only what the job's environment adds to the worker's, which the server inherited)
  server -> worker: {"id", "pid"} once forked (or handed to a pool member: see pool.py);
                    {"id", "code", "retired"} when the job ends ("retired": why its member was not kept)

Everything is keyed by the request id, never by pid: pids are reused (pid_max is often 32768), and an
exit reported under a pid could otherwise be taken for a later job's.

Each child becomes its own session leader (so a kill reaches its whole tree), a child subreaper (so what
it starts stays in its tree even after setsid and a double fork) that dies with the server (reaper.py),
gets the pipes as fds 1 and 2, the job's argv, cwd and environment, and runs the script as `__main__`.
Jobs that run as a new program (a shell script, a .py job with isolation "process") are started by the
launcher instead (launcher.py): a small process, as forking this one would make them cost more. Its
worker side, `Launcher`, is below: the same protocol, the same guarantees.
The server leads a session of its own (a signal to the worker's process group does not reach it) and is
a subreaper too: what a job left running when it ended comes back to it and is killed before the job's
exit is reported; when the worker goes (its channel closes, or SIGTERM) it kills every job and leaves. Exit codes,
`sys.exit`, uncaught exceptions and signals come out as they would from `python -u script.py`.
One difference remains: modules the server already imported (titan_sdk, zmq, msgpack and the standard
modules they use) are not imported again, so a job's own file named like one of them does not shadow it.
Jobs that need a pristine interpreter ask for isolation="process". The server is also the parent of
the pool's members (isolation="pool", pool.py), so they too start warm.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import select
import selectors
import signal
import socket
import sys
import time
from typing import Dict, List, Optional, Sequence


from titan import defaults
from titan.worker import jobrun, launcher, pool, reaper
from titan.worker.jobrun import send as _send
from titan.worker.pool import Pool, PoolLimits


# ----------------------------------------------------------------- the server (a child of the worker)

def serve(channel: socket.socket, preload: Sequence[str] = (), the_pool: Optional[Pool] = None) -> None:
    """Fork a child per request (or hand it to a pool member); report each job's pid and exit code.
    Returns when the worker is gone."""
    import titan_sdk  # noqa: F401 -- warm: jobs import it, and its dependencies

    _lead_own_session()
    reaper.become_subreaper()
    _forget_workers_logging()
    _send(channel, {"ready": True, "error": _preload(preload)})
    the_pool = the_pool or Pool(0, PoolLimits())
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_write, False)
    signal.set_wakeup_fd(wake_write)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    signal.signal(signal.SIGINT, signal.SIG_IGN)     # the worker decides when its jobs stop
    signal.signal(signal.SIGTERM, lambda *_: reaper.leave())   # the worker is stopping, or has gone
    selector = selectors.DefaultSelector()
    selector.register(channel, selectors.EVENT_READ)
    selector.register(wake_read, selectors.EVENT_READ)
    server = _Server(channel, (wake_read, wake_write), the_pool)
    try:
        server.top_up()
        while True:
            for key, _ in selector.select():
                if key.fileobj == wake_read:
                    os.read(wake_read, 4096)
                elif not server.take_request():
                    reaper.leave()
            server.report_exits()
            server.top_up()
    except ConnectionError:   # a worker SIGKILLed with our reports unread: a send fails before any EOF is read
        reaper.leave()


def _lead_own_session() -> None:
    try:
        os.setsid()
    except PermissionError:   # already a session leader (started with a new session)
        pass



def _forget_workers_logging() -> None:
    """Jobs start with logging as a fresh interpreter has it: no handlers, level WARNING (the worker's
    own basicConfig would otherwise make a job's logging.basicConfig do nothing)."""
    logging.root.handlers.clear()
    logging.root.setLevel(logging.WARNING)


def _preload(modules: Sequence[str]) -> Optional[str]:
    """Import what --preload names, so every forked job and pool member starts with it."""
    for name in modules:
        try:
            importlib.import_module(name)
        except BaseException as exc:   # noqa: BLE001 -- any failure is reported to the worker
            return f"--preload {name}: {type(exc).__name__}: {exc}"
    return None


class _Server:
    """The fork server's state: forked jobs not yet reaped, and the pids of the pool's members (which
    talk to the worker directly: see pool.py)."""

    def __init__(self, channel, own_fds, the_pool: Pool):
        self.channel, self.own_fds, self.pool = channel, own_fds, the_pool
        self.children: Dict[int, int] = {}   # pid -> request id, for forked jobs not yet reaped

    def take_request(self) -> bool:
        request, fds = jobrun.receive(self.channel, 2)
        if request is None:
            return False
        if request.get("pool_start"):
            self.pool.used = True
            return True
        server_pid = os.getpid()
        pid = os.fork()
        if pid == 0:
            _run_child(request, fds, [self.channel.fileno(), *self.own_fds], server_pid)
        self.children[pid] = request["id"]
        for fd in fds:
            os.close(fd)
        _send(self.channel, {"id": request["id"], "pid": pid})
        return True

    def _start_member(self) -> None:
        """Fork a member and hand the worker its end of their socket pair. The member answers on the
        server's own channel (each message one atomic packet), so the worker hears it in order with
        the server's report of the member's exit."""
        worker_end, member_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        server_pid = os.getpid()
        pid = os.fork()
        if pid == 0:
            try:
                worker_end.close()
                pool.become_member(self.own_fds, server_pid)
                pool.serve_jobs(member_end, self.channel, self.pool.limits)
            finally:
                os._exit(1)
        member_end.close()
        self.pool.members.add(pid)
        _send(self.channel, {"member": pid}, [worker_end.fileno()])
        worker_end.close()

    def top_up(self) -> None:
        """Keep `size` members warm once the pool is in use, so a job never waits for a fork."""
        while self.pool.used and len(self.pool.members) < self.pool.size:
            self._start_member()

    def report_exits(self) -> None:
        for pid, code in reaper.ended_children():
            request_id = self.children.pop(pid, None)
            if request_id is not None:
                # What the job left running came back to this subreaper when it ended: it goes first,
                # so its output pipes close and the job is over when the worker hears of its end.
                reaper.kill_leftovers(spare={*self.children, *self.pool.members})
                _send(self.channel, {"id": request_id, "code": code})
            elif pid in self.pool.members:
                self.pool.members.discard(pid)
                _send(self.channel, {"member_exit": pid, "code": code})


def _run_child(request: dict, fds, server_fds, server_pid: int) -> None:
    """In the forked child: become the job, run it, exit with its code. Never returns."""
    code = 1
    try:
        _become_job(request, fds, server_fds, server_pid)
        code = jobrun.run_script(request["argv"])
    finally:
        os._exit(code)


def _become_job(request: dict, fds, server_fds, server_pid: int) -> None:
    signal.set_wakeup_fd(-1)
    for sig in (signal.SIGCHLD, signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for fd in server_fds:
        os.close(fd)
    os.setsid()
    reaper.become_subreaper()
    reaper.die_with_parent(server_pid)
    stdin = os.open(os.devnull, os.O_RDONLY)
    for target, source in ((0, stdin), (1, fds[0]), (2, fds[1])):
        os.dup2(source, target)
    for fd in (stdin, *fds):
        os.close(fd)
    jobrun.job_stdio()
    os.chdir(request["cwd"])
    os.environ.update(request["env"])   # over the environment inherited from the worker
    sys.argv = list(request["argv"])
    sys.path[0] = os.path.dirname(os.path.abspath(request["argv"][0]))
    # A fresh interpreter would put the job's own PYTHONPATH (e.g. its project folder) right after that.
    extra = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and p not in sys.path]
    sys.path[1:1] = extra


# ----------------------------------------------------------------- the worker's side

class StartError(Exception):
    """A process the worker runs jobs with (its fork server, its launcher) did not start; the message
    says why."""


class PreloadError(StartError):
    """A module named by --preload could not be imported; the message says which and why."""


def start_fork_server(config, fresh: bool = False, wait: bool = True) -> "ForkServer":
    """The fork server a worker with this WorkerConfig needs; PreloadError if --preload failed (known at
    once when `wait`, else from its preload_error once pump() has read its "ready")."""
    server = ForkServer(config.preload, pool_size=config.slots,
                        limits=PoolLimits(config.pool_max_jobs, config.pool_max_rss_mb),
                        warm_pool=config.isolation == "pool", fresh=fresh, wait=wait)
    if server.preload_error:
        server.close()
        raise PreloadError(server.preload_error)
    return server


def start_launcher(config, wait: bool = True) -> "Launcher":
    """The launcher (launcher.py) of the worker with this WorkerConfig; StartError if it did not start."""
    started = Launcher(["titan.worker", "--master", f"{config.master_host}:{config.master_port}",
                        "--name", config.name], wait=wait)
    if started.preload_error:
        started.close()
        raise StartError(started.preload_error)
    return started


class ForkedProcess:
    """A job forked by the server: enough of subprocess.Popen for the executor (pid, poll, wait)."""

    def __init__(self, server: "ForkServer", pid: int, pooled: bool = False):
        self.server, self.pid, self.returncode, self.pooled = server, pid, None, pooled
        self.retired: Optional[str] = None   # a pool job's member: why it was not kept for more jobs

    def poll(self) -> Optional[int]:
        return self.returncode

    def wait(self, timeout: float = 10.0) -> Optional[int]:
        if not self.server.lost:   # a lost server reports nothing more: the job died with it
            try:
                self.server.pump_until(lambda: self.returncode is not None, timeout)
            except ConnectionError:
                pass
        return self.returncode

    def kill_target(self) -> Optional[int]:
        """The process group a kill must reach: the job's own, or its pool member's while that runs it
        (or left it for good); None once a member that stays in the pool has finished the job."""
        if self.returncode is not None and self.pooled and not self.retired:
            return None
        return self.pid


class ForkServer:
    ROLE = "the fork server"

    def __init__(self, preload: Sequence[str] = (), pool_size: int = 0, limits: Optional[PoolLimits] = None,
                 warm_pool: bool = False, fresh: bool = False, wait: bool = True) -> None:
        """`fresh`: a new interpreter rather than a fork of this process (a worker that already holds a
        ZeroMQ context must not fork; it needs this to replace a server it lost). `wait`: return once it is
        ready (else its "ready" arrives through pump(), and preload_error says then if it failed)."""
        worker_end, server_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        settings = (list(preload), pool_size, limits or PoolLimits(), warm_pool)
        self.pid = self._spawn(server_end, settings) if fresh else os.fork()
        if self.pid == 0:
            worker_end.close()
            try:
                serve(server_end, preload, Pool(pool_size, limits or PoolLimits(), used=warm_pool))
            finally:
                reaper.leave()   # whatever ends it, never return into the worker's code that forked this process
        server_end.close()
        self.channel = worker_end
        self.lost = False                             # it has exited without being asked to
        self._next_id = 0
        self._started: Dict[int, int] = {}            # request id -> pid, until launch() takes it
        self._processes: Dict[int, ForkedProcess] = {}   # request id -> its running process
        self._early_exits: Dict[int, dict] = {}       # request id -> its end, for exits seen inside launch()
        self._members: Dict[int, socket.socket] = {}   # pool member pid -> the channel its jobs go down
        self._idle: List[int] = []                    # members waiting for a job, oldest first
        self._member_jobs: Dict[int, int] = {}        # member pid -> the request id it runs
        self._pool_started = warm_pool
        self.preload_error: Optional[str] = None
        self._ready = False
        if wait and (preload or fresh) and not self.pump_until(lambda: self._ready, defaults.PRELOAD_TIMEOUT_S):
            what = f"--preload {','.join(preload)}: not imported" if preload else f"{self.ROLE} did not start"
            self.preload_error = f"{what} within {defaults.PRELOAD_TIMEOUT_S:.0f}s"

    def _spawn(self, server_end: socket.socket, settings: tuple) -> int:
        return _spawn_fresh(server_end, settings)

    def fileno(self) -> int:
        return self.channel.fileno()

    def launch(self, argv, cwd: str, env: dict, stdout_fd: int, stderr_fd: int, pooled: bool = False,
               execute: str = "") -> ForkedProcess:
        """Start a job: argv[0] a .py script run in a forked child (or, `pooled`, by a pool member), or, by
        a Launcher, a command executed (`execute`: the script's name, for errors). `env`: what the job's
        environment adds to this process's (which the server, its members and the launcher inherited)."""
        self._next_id += 1
        request_id = self._next_id
        request = {"id": request_id, "argv": list(argv), "cwd": cwd, "env": env}
        if execute:
            request["name"] = execute
        if pooled:
            return self._hand_to_member(request, (stdout_fd, stderr_fd))
        _send(self.channel, request, (stdout_fd, stderr_fd))
        if not self.pump_until(lambda: request_id in self._started, timeout=10.0):
            raise OSError(f"{self.ROLE} did not start the job within 10s")
        process = ForkedProcess(self, self._started.pop(request_id), pooled)
        if request_id in self._early_exits:
            self._ended(process, self._early_exits.pop(request_id))
        else:
            self._processes[request_id] = process
        return process

    def _hand_to_member(self, request: dict, fds) -> ForkedProcess:
        """Straight to an idle member: no round trip, its pid is known."""
        while True:
            if not self._idle:
                if not self._pool_started:
                    _send(self.channel, {"pool_start": True})
                    self._pool_started = True
                if not self.pump_until(lambda: bool(self._idle), timeout=10.0):
                    raise OSError("no pool interpreter became free within 10s")
            pid = self._idle.pop(0)
            try:
                _send(self._members[pid], request, fds)
                break
            except OSError:   # it has just died; the server's report of that will follow
                continue
        self._member_jobs[pid] = request["id"]
        process = ForkedProcess(self, pid, pooled=True)
        self._processes[request["id"]] = process
        return process

    def pump(self) -> None:
        """Read what the server and the pool have said (without blocking): starts, members and exits."""
        while True:
            try:
                message, fds = jobrun.receive(self.channel, 1, socket.MSG_DONTWAIT)
            except BlockingIOError:
                return
            if message is None:
                self.lost = True
                raise ConnectionError(f"{self.ROLE} has exited")
            self._on_message(message, fds)

    def pump_until(self, done, timeout: float) -> bool:
        if self.lost:
            raise ConnectionError(f"{self.ROLE} has exited")
        deadline = time.monotonic() + timeout
        while not done():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            select.select([self.channel], [], [], remaining)
            self.pump()
        return True

    def _on_message(self, message: dict, fds=()) -> None:
        if "ready" in message:
            self._ready, self.preload_error = True, message["error"]
            return
        if "member" in message and "id" not in message:   # a new member, and its channel
            self._members[message["member"]] = socket.socket(fileno=fds[0])
            self._idle.append(message["member"])
            return
        if "member_exit" in message:
            self._member_ended(message["member_exit"], message["code"])
            return
        if "member" in message:   # a member finished a job
            self._member_jobs.pop(message["member"], None)
            if message["retired"]:
                self._drop_member(message["member"])
            else:
                self._idle.append(message["member"])
        request_id = message["id"]
        if "pid" in message:
            self._started[request_id] = message["pid"]
            return
        process = self._processes.pop(request_id, None)
        if process is None:   # it ended before launch() had registered it
            self._early_exits[request_id] = message
        else:
            self._ended(process, message)

    def _member_ended(self, pid: int, code: int) -> None:
        """A member's exit: the end of the job it ran, if it was running one (os._exit, a signal, a kill)."""
        request_id = self._member_jobs.pop(pid, None)
        self._drop_member(pid)
        if request_id is not None:
            self._on_message({"id": request_id, "code": code, "retired": "the job ended its process"})

    def _drop_member(self, pid: int) -> None:
        channel = self._members.pop(pid, None)
        if channel is not None:
            channel.close()
        if pid in self._idle:
            self._idle.remove(pid)

    def _ended(self, process: ForkedProcess, message: dict) -> None:
        process.retired = message.get("retired")
        process.returncode = message["code"]

    def close(self) -> None:
        for pid in list(self._members):
            self._drop_member(pid)   # an idle member exits when its channel closes
        self.channel.close()
        try:
            os.kill(self.pid, signal.SIGTERM)
            os.waitpid(self.pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass


def _spawn_fresh(server_end: socket.socket, settings: tuple) -> int:
    """Start a fork server in a new interpreter (posix_spawn: nothing of this process is copied but
    the channel's descriptor); its pid."""
    preload, pool_size, limits, warm_pool = settings
    os.set_inheritable(server_end.fileno(), True)
    argument = json.dumps([server_end.fileno(), preload, pool_size, limits.max_jobs, limits.max_rss_mb, warm_pool])
    code = "from titan.worker.forkserver import serve_from_argument as s; import sys; s(sys.argv[1])"
    return os.posix_spawn(sys.executable, [sys.executable, "-c", code, argument], dict(os.environ),
                          setsid=True)


def serve_from_argument(argument: str) -> None:
    """The entry point of a fresh fork server (see _spawn_fresh)."""
    fd, preload, pool_size, max_jobs, max_rss_mb, warm_pool = json.loads(argument)
    channel = socket.socket(fileno=fd)
    os.set_inheritable(fd, False)
    serve(channel, preload, Pool(pool_size, PoolLimits(max_jobs, max_rss_mb), used=warm_pool))


class Launcher(ForkServer):
    """The worker's side of its launcher (launcher.py), which starts jobs that run as new programs: the
    fork server's protocol, without preloading or a pool. `label` goes on the launcher's command line."""

    ROLE = "the launcher"

    def __init__(self, label: Sequence[str] = (), wait: bool = True) -> None:
        self._label = list(label)
        super().__init__(fresh=True, wait=wait)

    def _spawn(self, server_end: socket.socket, settings: tuple) -> int:
        return launcher.spawn(server_end, self._label)
