"""Keeping hold of everything a job starts, on Linux, with two prctl(2) settings (through ctypes):

- PR_SET_CHILD_SUBREAPER: an orphan is re-parented to its nearest living ancestor that is a subreaper,
  not to init. Every job process is one, so what it starts stays in its process tree even after a
  double fork and setsid; the fork server and the worker are too, so what a job left behind when it
  ended comes back to them, and any child they did not start themselves is such a leftover.
- PR_SET_PDEATHSIG: a job (and a pool member) gets SIGKILL when the fork server that forked it dies, so
  a killed worker (its fork server then kills everything and leaves) never leaves its jobs running.

Elsewhere (no prctl) both are quietly unavailable and the process-group kill is all there is.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from typing import Collection, List

import psutil

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


def children(pid: int) -> List[int]:
    """The pids of a process's children (from /proc, else psutil); [] once it has gone."""
    try:
        found: List[int] = []
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as listing:
                found.extend(int(child) for child in listing.read().split())
        return found
    except (OSError, ValueError):
        try:
            return [child.pid for child in psutil.Process(pid).children()]
        except psutil.Error:
            return []


def kill_tree(pid: int) -> None:
    """SIGKILL a process and all its descendants (those that left its session too), leaves first."""
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


def kill_leftovers(spare: Collection[int] = ()) -> int:
    """In a subreaper: kill every child of this process (with its tree) but those in `spare`, and reap
    them, until none is left; how many were killed."""
    me, killed = os.getpid(), 0
    for _ in range(ROUNDS):
        leftovers = [pid for pid in children(me) if pid not in spare]
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
