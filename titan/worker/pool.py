"""The warm pool (isolation="pool"): long-lived interpreters, forked from the fork server, that each run
`.py` jobs one after another, so a job costs what `runpy` costs (tens of microseconds) rather than a fork
(milliseconds) or a new interpreter (tens of milliseconds).

A pool process ("member") is a session leader, so killing its process group on timeout or cancel reaches
everything the job started. It runs a job with the job's argv, cwd, environment and stdio (fds 1 and 2
are the job's output pipes, which the worker polls as for any job), answers the job's exit code, and
then puts back what the job may have changed (`JobSnapshot`). It retires (exits, and the fork server
forks a fresh one) when it cannot be trusted any more: threads or child processes left behind, changed
resource limits, too many jobs (--pool-max-jobs), too much memory (--pool-max-rss). What a job left
running is killed first (a member is a child subreaper, so daemons that called setsid are found too:
see reaper.py). A job that ends its
process (`os._exit`, a signal, a kill) ends the member; the fork server reports that as the job's exit.

Members are forked by the fork server, which hands the worker its end of each member's socket pair;
jobs then go straight from the worker to a member, and answers straight back (on the fork server's
channel, which members share for sending), so a job costs no hop through the server:

    server -> worker: {"member": pid} with the worker's end of the member's socket pair attached
    worker -> member: {"id", "argv", "cwd", "env"} with the job's stdout and stderr attached ("env": what the
                      job's environment adds to the member's baseline, the worker's own)
    member -> worker: {"id", "code", "retired", "member"} once the job has finished and its output
                      pipes are closed ("retired": why it will not take another job, or None)
    server -> worker: {"member_exit": pid, "code"} when a member has ended (during a job: its end)
"""

from __future__ import annotations

import logging
import os
import _signal
import resource
import signal
import sys
import threading
from dataclasses import dataclass, field
from typing import List, Optional, Set

from titan.worker import jobrun, reaper

PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")
_CATCHABLE = [s for s in signal.valid_signals() if s not in (signal.SIGKILL, signal.SIGSTOP)]


@dataclass
class PoolLimits:
    max_jobs: int = 0        # 0: no limit
    max_rss_mb: int = 0      # 0: no limit


# ----------------------------------------------------------------- inside a member

class Baseline:
    """The state every job starts from, taken once when the member starts."""

    def __init__(self) -> None:
        self.environ = dict(os.environ)
        self.cwd = os.getcwd()
        self.argv, self.path = list(sys.argv), list(sys.path)
        self.handlers = [(sig, _signal.getsignal(sig)) for sig in _CATCHABLE]
        self.handlers = [(sig, handler) for sig, handler in self.handlers if handler is not None]
        self.handled_signals = [sig for sig, _ in self.handlers]
        self.handler_list = [handler for _, handler in self.handlers]
        self.mask = signal.pthread_sigmask(signal.SIG_BLOCK, [])
        self.umask = os.umask(0o22)
        os.umask(self.umask)
        self.limits = _resource_limits()
        self.python_path_dirs = _folder_prefixes(self.environ.get("PYTHONPATH", "").split(os.pathsep))
        self.recursion_limit = sys.getrecursionlimit()
        self.hooks = (sys.excepthook, sys.displayhook, sys.breakpointhook, sys.unraisablehook)
        self.stdio = (sys.stdin, sys.stdout, sys.stderr, sys.__stdin__, sys.__stdout__, sys.__stderr__)
        self.root_logging = (list(logging.root.handlers), logging.root.level)


class JobSnapshot:
    """What a job may change in its interpreter: put back after it, to the member's baseline."""

    def __init__(self, baseline: Baseline) -> None:
        """Taken while the member waits for its next job, off that job's path (nothing runs in between)."""
        self.base = baseline
        self.job_environ: dict = {}      # what the job's environment adds to the baseline's
        self.environ_given: dict = {}    # os.environ._data as the job got it
        self.environ_left: dict = {}     # after restore(): what of it stays set for the next job (switch_environ)
        self.job_dirs: List[str] = []
        self.modules = list(sys.modules)   # lists: copied in microseconds, where sets cost tens of them
        self.importer_cache = list(sys.path_importer_cache)
        self.loggers = list(logging.Logger.manager.loggerDict)

    def give_environ(self, left: dict, job_environ: dict) -> None:
        """Set the job's environment (`left`: the last job's variables, still set over the baseline), and
        remember it as given (a copy of os.environ._data costs a microsecond; encoding the job's
        variables to compare with it later cost tens)."""
        switch_environ(self.base.environ, left, job_environ)
        self.job_environ, self.environ_given = job_environ, os.environ._data.copy()

    def restore(self) -> None:
        base = self.base
        signal.setitimer(signal.ITIMER_REAL, 0)   # also cancels an alarm()
        # Looked at all at once (one C loop over ~60 signals, most jobs change none), one by one if changed.
        if list(map(_signal.getsignal, base.handled_signals)) != base.handler_list:
            for sig, handler in base.handlers:
                if _signal.getsignal(sig) is not handler:
                    signal.signal(sig, handler)
        signal.pthread_sigmask(signal.SIG_SETMASK, base.mask)
        os.umask(base.umask)
        os.chdir(base.cwd)
        self._restore_environ()
        sys.argv[:], sys.path[:] = base.argv, base.path
        sys.setrecursionlimit(base.recursion_limit)
        sys.excepthook, sys.displayhook, sys.breakpointhook, sys.unraisablehook = base.hooks
        (sys.stdin, sys.stdout, sys.stderr, sys.__stdin__, sys.__stdout__, sys.__stderr__) = base.stdio
        self._restore_logging()
        self._forget_job_modules()

    def _restore_environ(self) -> None:
        """A job that changed its environment itself gets the baseline back in full; otherwise what it was
        given stays set (`environ_left`) until the next job's replaces it, which changes only the few
        variables that differ (nothing runs in between to see them). (os.environ._data: comparing it
        with its copy taken as the job started is one C call; reading os.environ decodes every variable.)"""
        if os.environ._data != self.environ_given:
            replace_environ(self.base.environ)
            self.environ_left = {}
        else:
            self.environ_left = self.job_environ

    def _restore_logging(self) -> None:
        handlers, level = self.base.root_logging
        logging.root.handlers[:] = handlers
        if logging.root.level != level:   # setLevel clears every logger's cache: only when needed
            logging.root.setLevel(level)
        for name in added(logging.Logger.manager.loggerDict, self.loggers):
            del logging.Logger.manager.loggerDict[name]

    def _forget_job_modules(self) -> None:
        """The job's own modules (beside its script, or in its project) go: the next job may have its own
        file of the same name. Modules it imported from the installation stay warm."""
        for name in added(sys.modules, self.modules):
            where = getattr(sys.modules[name], "__file__", None) or ""
            if any(where.startswith(folder) for folder in self.job_dirs):
                del sys.modules[name]
        for entry in added(sys.path_importer_cache, self.importer_cache):
            del sys.path_importer_cache[entry]

    def untrusted(self, limits: PoolLimits, jobs_run: int) -> Optional[str]:
        """Why this interpreter should not run another job, if it should not."""
        if threading.active_count() > 1:
            return "the job left threads running"
        if _children_left():
            return "the job left child processes"
        if _resource_limits() != self.base.limits:
            return "the job changed resource limits"
        if limits.max_jobs and jobs_run >= limits.max_jobs:
            return "--pool-max-jobs reached"
        if limits.max_rss_mb and _peak_rss_bytes() > limits.max_rss_mb * 2**20 \
                and _rss_bytes() > limits.max_rss_mb * 2**20:
            return "--pool-max-rss reached"
        return None


def added(now: dict, before: List[str]) -> List[str]:
    """The keys of `now` not among `before` (its keys earlier). A dict keeps its keys in insertion order,
    so when the old keys are still its first ones the new ones are the rest: one list comparison instead
    of two sets of every module's name."""
    keys = list(now)
    if keys[:len(before)] == before:
        return keys[len(before):]
    known = set(before)
    return [key for key in keys if key not in known]


def switch_environ(baseline: dict, left: dict, wanted: dict) -> None:
    """From the baseline with `left` set over it (the last job's variables) to the baseline with `wanted`."""
    for key in left.keys() - wanted.keys():
        if key in baseline:
            os.environ[key] = baseline[key]
        else:
            del os.environ[key]
    for key, value in wanted.items():
        if left.get(key) != value:
            os.environ[key] = value


def replace_environ(wanted: dict) -> None:
    """os.environ becomes `wanted`, touching only what differs (a job's differs in a few TITAN_* keys;
    clear() and update() would unset and set every variable)."""
    current = dict(os.environ)
    for key in current.keys() - wanted.keys():
        del os.environ[key]
    for key, value in wanted.items():
        if current.get(key) != value:
            os.environ[key] = value


def _resource_limits() -> tuple:
    return tuple(resource.getrlimit(r) for r in (resource.RLIMIT_AS, resource.RLIMIT_CPU,
                                                 resource.RLIMIT_NOFILE, resource.RLIMIT_STACK,
                                                 resource.RLIMIT_NPROC, resource.RLIMIT_FSIZE))


def _children_left() -> bool:
    """Reap the job's ended children; whether any is still running."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return False
        if pid == 0:
            return True


def _has_children() -> bool:
    """Whether this process has any child, running or ended, without reaping it (one system call, where
    listing them from /proc costs several)."""
    try:
        os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return False
    return True


def _peak_rss_bytes() -> int:
    """The most this process has used (one system call): below a limit, its size now is below it too."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024   # kB on Linux


def _rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * PAGE_BYTES


def serve_jobs(requests, replies, limits: PoolLimits) -> None:
    """A member's life: run the jobs the worker sends on `requests`, answer each on `replies` (shared
    with the fork server), until a job ends it or it retires. Never returns."""
    idle_out, idle_err = os.dup(1), os.dup(2)   # where fds 1 and 2 point between jobs
    baseline = Baseline()
    jobs_run = 0
    environ_left: dict = {}   # the last job's variables, still set over the baseline
    while True:
        snapshot = JobSnapshot(baseline)
        request, fds = jobrun.receive(requests, 2)
        if request is None:
            os._exit(0)
        jobs_run += 1
        snapshot.job_dirs = _job_dirs(request, baseline)
        snapshot.give_environ(environ_left, request["env"])
        code = _run_job(request, fds)
        # Everything the job started is in this subreaper's tree: it ends with the job, daemons too.
        left_children = reaper.kill_leftovers() if _has_children() else 0
        for target, idle in ((1, idle_out), (2, idle_err)):
            os.dup2(idle, target)   # the job's pipes close here: the worker sees its output end
        why = "the job left child processes" if left_children else snapshot.untrusted(limits, jobs_run)
        jobrun.send(replies, {"id": request["id"], "code": code, "retired": why, "member": os.getpid()})
        if why:
            os._exit(0)
        snapshot.restore()   # after the answer, off the job's path: the next job waits in the socket meanwhile
        environ_left = snapshot.environ_left


def _job_dirs(request: dict, baseline: Baseline) -> List[str]:
    """The folders whose modules are the job's own (forgotten after it): its cwd, its script's folder
    and its PYTHONPATH (the member's own, folded once, unless the job brings one: a project)."""
    own = request["env"].get("PYTHONPATH")
    extra = baseline.python_path_dirs if own is None else _folder_prefixes(own.split(os.pathsep))
    return _folder_prefixes([request["cwd"], os.path.dirname(request["argv"][0]) or "."]) + extra


def _folder_prefixes(folders: List[str]) -> List[str]:
    return [os.path.join(os.path.abspath(folder), "") for folder in folders if folder]


def _run_job(request: dict, fds) -> int:
    for target, source in ((1, fds[0]), (2, fds[1])):
        os.dup2(source, target)
    for fd in fds:
        os.close(fd)
    jobrun.job_stdio()
    sys.__stdin__, sys.__stdout__, sys.__stderr__ = sys.stdin, sys.stdout, sys.stderr
    os.chdir(request["cwd"])
    sys.argv = list(request["argv"])
    sys.path[0] = os.path.dirname(os.path.abspath(request["argv"][0]))
    extra = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and p not in sys.path]
    sys.path[1:1] = extra
    return jobrun.run_script(request["argv"])


def become_member(server_fds, server_pid: int) -> None:
    """In a freshly forked member: drop the server's descriptors and signal set-up, lead a session, keep
    what its jobs start in its tree (a subreaper), die with the server."""
    signal.set_wakeup_fd(-1)
    for sig in (signal.SIGCHLD, signal.SIGTERM):
        signal.signal(sig, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for fd in server_fds:
        os.close(fd)
    os.setsid()
    reaper.become_subreaper()
    reaper.die_with_parent(server_pid)
    stdin = os.open(os.devnull, os.O_RDONLY)
    os.dup2(stdin, 0)
    os.close(stdin)


# ----------------------------------------------------------------- in the fork server: the members

@dataclass
class Pool:
    """The fork server's members; `size` are kept warm once the pool is in use."""

    size: int
    limits: PoolLimits
    used: bool = False
    members: Set[int] = field(default_factory=set)   # their pids
