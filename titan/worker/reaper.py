"""Keeping hold of everything a job starts, on Linux, with two prctl(2) settings (through ctypes):

- PR_SET_CHILD_SUBREAPER: an orphan is re-parented to its nearest living ancestor that is a subreaper,
  not to init. Every job process is one, so what it starts stays in its process tree even after a
  double fork and setsid; the fork server and the worker are too, so what a job left behind when it
  ended comes back to them, and any child they did not start themselves is such a leftover.
- PR_SET_PDEATHSIG: a job (and a pool member) gets SIGKILL when the fork server that forked it dies, so
  a killed worker (its fork server then kills everything and leaves) never leaves its jobs running.

Elsewhere (no prctl) both are quietly unavailable and the process-group kill is all there is.

psutil is imported only when a tree is killed (or /proc has no children lists): the launcher
(launcher.py) uses this module and must stay small, since forking it is what every job it starts costs.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from typing import Collection, Iterator, List, Tuple

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
ROUNDS = 20   # kill-and-reap passes: each pass also catches what the last one's victims had started


def _load_prctl():
    """libc's prctl, looked up once (in this process's own symbols: ctypes.util.find_library would run
    ldconfig, a process per call); None where there is none."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _load_prctl()


def _prctl(option: int, value: int) -> bool:
    return _PRCTL is not None and _PRCTL(option, value, 0, 0, 0) == 0


def become_subreaper() -> bool:
    """Orphaned descendants of this process come back to it instead of init."""
    return _prctl(PR_SET_CHILD_SUBREAPER, 1)


def die_with_parent(parent_pid: int) -> None:
    """SIGKILL this process when `parent_pid` (its parent now) dies; at once if it already has."""
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent_pid:
        os._exit(1)


def children(pid: int, one_thread: bool = False) -> List[int]:
    """The pids of a process's children (from /proc, else psutil); [] once it has gone. `one_thread`: the
    process never starts a thread, so they are all its main thread's (listing its threads is the costly
    part of reading /proc here, and the launcher does it after every job)."""
    try:
        found: List[int] = []
        for task in [pid] if one_thread else os.listdir(f"/proc/{pid}/task"):
            found.extend(int(child) for child in _read(f"/proc/{pid}/task/{task}/children").split())
        return found
    except (OSError, ValueError):
        import psutil
        try:
            return [child.pid for child in psutil.Process(pid).children()]
        except psutil.Error:
            return []


def _read(path: str) -> bytes:
    """A small /proc file's bytes (os.read: a fifth of what open() costs, and it runs after every job)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.read(fd, 1 << 16)
    finally:
        os.close(fd)


def ended_children() -> Iterator[Tuple[int, int]]:
    """(pid, exit code) of each child that has ended, reaped, without waiting for the others."""
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        yield pid, os.waitstatus_to_exitcode(status)


def kill_tree(pid: int) -> None:
    """SIGKILL a process and all its descendants (those that left its session too), leaves first."""
    import psutil
    try:
        root = psutil.Process(pid)
        victims = root.children(recursive=True) + [root]
    except psutil.Error:
        return
    for victim in reversed(victims):
        try:
            victim.kill()
        except psutil.Error:
            pass


def kill_leftovers(spare: Collection[int] = (), one_thread: bool = False) -> int:
    """In a subreaper: kill every child of this process (with its tree) but those in `spare`, and reap
    them, until none is left; how many were killed. `one_thread`: as for children()."""
    me, killed = os.getpid(), 0
    for _ in range(ROUNDS):
        leftovers = [pid for pid in children(me, one_thread) if pid not in spare]
        if not leftovers:
            break
        for pid in leftovers:
            kill_tree(pid)
            _reap(pid)
        killed += len(leftovers)
    return killed


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, 0)   # killed with SIGKILL: it ends at once
    except ChildProcessError:
        pass


def leave() -> None:
    """In a fork server or launcher: kill every job (and pool member), with all they started, and exit.
    The worker's SIGTERM often comes while it leaves already (its channel closed first): that must not
    start leaving again in the middle (a half-imported psutil then failed, and the exception ran on into
    the code that forked it)."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        kill_leftovers()
    finally:
        os._exit(0)
