"""How a worker runs one job: a fresh workspace, the right interpreter, the environment, output pipes,
and killing the whole process tree when asked.

Nothing here blocks: the worker's poll loop watches each job's pipe descriptors and calls `read_output`
when one is readable, and `exit_code` to learn whether the process has ended.
"""

from __future__ import annotations

import functools
import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

from titan import defaults
from titan.core.jobs import split_args
from titan.core.names import folder_name
from titan.net.jobwire import split_archive_filename
from titan.worker import reaper
from titan.worker.sweeper import SWEEPER
from titan.worker.workspaces import Workspace, Workspaces

READ_CHUNK_BYTES = 64 * 1024


@dataclass
class JobContext:
    """Where the job came from and how it reaches its master; becomes the job's TITAN_* environment."""

    job_id: str
    dag: Optional[str]
    attempt: int
    worker_name: str
    master_host: str
    master_port: int
    dag_dir: str = ""          # shared by the jobs of one DAG on this worker, for intermediate files
    agent_run_id: Optional[str] = None   # the agent run its DAG was submitted under, passed on to what it submits
    keys_dir: str = ""         # with keys: a bundle of the job's own key pair, valid while it runs (TITAN_KEYS)

    def environment(self) -> Dict[str, str]:
        secured = {"TITAN_KEYS": self.keys_dir} if self.keys_dir else {}
        return {**secured,
            "TITAN_HOST": self.master_host, "TITAN_PORT": str(self.master_port),
            "TITAN_JOB_ID": self.job_id, "TITAN_DAG_ID": self.dag or "", "TITAN_DAG_DIR": self.dag_dir,
            "TITAN_ATTEMPT": str(self.attempt), "TITAN_WORKER_ID": self.worker_name,
            "TITAN_AGENT_RUN_ID": self.agent_run_id or "",
            "PYTHONUNBUFFERED": "1",
        }


@dataclass
class RunningJob:
    context: JobContext
    process: object                  # subprocess.Popen, or forkserver.ForkedProcess: pid, poll(), wait()
    workspace: Workspace
    streams: Dict[int, str] = field(default_factory=dict)   # open pipe fd -> "stdout" / "stderr"
    deadline: Optional[float] = None                         # time.monotonic() past which it is killed
    timed_out: bool = False
    exited_at: Optional[float] = None                        # when its process was seen to have ended
    pipes: Tuple[int, ...] = ()                              # our read ends, closed in clean_up
    service_port: int = 0                                    # a service: the port it listens on
    service_up: bool = False                                 # a service whose port accepted a connection
    next_probe: float = 0.0                                  # when to look at a service's port again
    started: float = 0.0                                     # time.monotonic() when it was started
    watch_from: Optional[float] = None                       # pipes not polled before then (None: polled)

    @property
    def job_id(self) -> str:
        return self.context.job_id

    @property
    def attempt(self) -> int:
        return self.context.attempt


class LaunchError(Exception):
    """The job's process could not be started; the message says why, for the job's logs."""


def command_for(script_path: str, args: str) -> List[str]:
    """`.py` runs with this worker's Python, `.sh` with bash, anything else is executed directly."""
    argv = split_args(args)
    if script_path.endswith(".py"):
        return [sys.executable, "-u", script_path, *argv]
    if script_path.endswith(".sh"):
        return ["bash", script_path, *argv]
    return [script_path, *argv]


def start_job(context: JobContext, filename: str, script: bytes, args: str, workspaces: Workspaces,
              timeout: Optional[float] = None, fork_server=None, project_dir: Optional[str] = None,
              pooled: bool = False, fresh: bool = False, launcher=None) -> RunningJob:
    """Start the job. Its script goes in a workspace of its own (workspaces.py); it runs in its DAG's folder
    on this worker (TITAN_DAG_DIR), which the DAG's jobs here share as in the original, or, outside a DAG,
    in the workspace. With a fork server, a `.py` job is forked from a warm Python (or, `pooled`, run by
    one of its warm pool members) unless `fresh`; any other job is executed by the launcher (launcher.py,
    a subreaper: it gets back what the job leaves running, see reaper.py). With a project_dir (an extracted
    archive), the workspace is a copy of the project and the job runs there; `filename` is
    '<archive>.zip/<path of the script in it>'."""
    if project_dir is not None:
        space = workspaces.make(context.job_id, context.attempt)
        workspace = space.path
        script_path = _project_script(workspace, project_dir, filename)
    else:
        try:
            space = workspaces.with_script(context.job_id, context.attempt, os.path.basename(filename) or "job", script)
        except OSError as exc:
            raise LaunchError(f"titan worker: cannot make the job's workspace: {exc}") from exc
        workspace = space.path
        script_path = os.path.join(workspace, space.script_name)
    stdout_read, stdout_write = os.pipe()
    stderr_read, stderr_write = os.pipe()
    if not context.dag_dir:
        context.dag_dir = workspace   # a job outside any DAG shares with nobody
    cwd = workspace if project_dir is not None else context.dag_dir
    overrides = context.environment()   # over the worker's own environment
    if project_dir is not None:   # the project's top-level modules import from anywhere in it
        overrides["PYTHONPATH"] = os.pathsep.join(filter(None, [workspace, os.environ.get("PYTHONPATH")]))
    try:
        if fork_server is not None and script_path.endswith(".py") and not fresh:
            process = fork_server.launch([script_path, *split_args(args)], cwd, overrides,
                                         stdout_write, stderr_write, pooled=pooled)
        elif launcher is not None:
            process = launcher.launch(command_for(script_path, args), cwd, overrides, stdout_write,
                                      stderr_write, execute=os.path.basename(script_path))
        else:
            process = subprocess.Popen(
                command_for(script_path, args), cwd=cwd, env={**os.environ, **overrides}, stdin=subprocess.DEVNULL,
                stdout=stdout_write, stderr=stderr_write,
                start_new_session=True)  # its own process group, so a kill reaches everything it started
    except (OSError, ValueError) as exc:
        for fd in (stdout_read, stderr_read):
            os.close(fd)
        shutil.rmtree(workspace, ignore_errors=True)
        raise LaunchError(f"titan worker: cannot start {os.path.basename(script_path)}: {exc}") from exc
    finally:
        os.close(stdout_write)
        os.close(stderr_write)
    started = time.monotonic()
    deadline = started + timeout if timeout else None
    job = RunningJob(context, process, space, deadline=deadline, pipes=(stdout_read, stderr_read), started=started)
    for fd, name in ((stdout_read, "stdout"), (stderr_read, "stderr")):
        os.set_blocking(fd, False)
        job.streams[fd] = name
    return job


def _project_script(workspace: str, project_dir: str, filename: str) -> str:
    """Copy the project into the workspace (jobs never write into the shared cache); the script's path."""
    archive, inner = split_archive_filename(filename)
    try:
        shutil.copytree(project_dir, workspace, symlinks=True, dirs_exist_ok=True)
    except (OSError, shutil.Error) as exc:
        shutil.rmtree(workspace, ignore_errors=True)
        raise LaunchError(f"titan worker: cannot copy project archive {archive!r} into the workspace: {exc}") from exc
    script_path = os.path.join(workspace, *inner.split("/"))
    if not os.path.isfile(script_path):
        shutil.rmtree(workspace, ignore_errors=True)
        raise LaunchError(f"titan worker: project archive {archive!r} has no file {inner!r}")
    return script_path


def read_output(job: RunningJob, fd: int) -> Tuple[str, Optional[bytes]]:
    """Read what is there on one pipe: None if nothing yet, b"" once it closed (then it is forgotten)."""
    stream = job.streams[fd]
    try:
        data = os.read(fd, READ_CHUNK_BYTES)
    except BlockingIOError:
        return stream, None
    if not data:
        del job.streams[fd]
    return stream, data


def reports_its_exit(job: RunningJob) -> bool:
    """Whether the job's end arrives as a message (from the fork server or its pool member), which wakes
    the worker's loop, rather than being found by polling its process."""
    return hasattr(job.process, "server")


def exit_code(job: RunningJob, now: float) -> Optional[int]:
    """The exit code once the process ended and its output is read to the end, else None. What it left
    running is killed as it ends (reaper.py), which closes its pipes; if something still holds them past
    a short grace, the job is over anyway: the rest of its output is not waited for."""
    code = job.process.poll()
    if code is None or not job.streams:
        return code
    if job.exited_at is None:
        job.exited_at = now
    return code if now - job.exited_at >= defaults.JOB_OUTPUT_GRACE_S else None


def kill_tree(job: RunningJob) -> None:
    """Kill the job's process and everything it started, including children that left its group."""
    target = job.process.kill_target() if hasattr(job.process, "kill_target") else job.process.pid
    if target is None:
        return   # a pool member that already finished this job and now runs or awaits another
    reaper.kill_tree(target)   # a job is a subreaper: its tree holds what left its session too
    try:
        os.killpg(target, 9)
    except (ProcessLookupError, PermissionError):
        pass


def clean_up(job: RunningJob, workspaces: Workspaces) -> None:
    for fd in job.pipes:
        os.close(fd)
    job.process.wait()
    workspaces.finished(job.workspace)
    if job.context.keys_dir:
        shutil.rmtree(job.context.keys_dir, ignore_errors=True)


def port_in_use(port: int) -> bool:
    """Whether something listens on 127.0.0.1:port already: a bind test, with SO_REUSEADDR as servers
    use it, so connections of an earlier run lingering in TIME_WAIT do not count."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def port_accepts(port: int) -> bool:
    """Whether 127.0.0.1:port accepts a TCP connection now (closed again at once)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=defaults.SERVICE_PROBE_TIMEOUT_S):
            return True
    except OSError:
        return False


def dag_dir(work_root: str, dag: Optional[str]) -> str:
    """The folder the jobs of `dag` share on this worker (made on first use); "" outside a DAG."""
    if not dag:
        return ""
    path = _dag_path(work_root, dag)
    if not os.path.isdir(path):   # a stat, where a failing mkdir costs a journal lookup: most jobs find it
        os.makedirs(path, exist_ok=True)
    return path


@functools.lru_cache(maxsize=1024)
def _dag_path(work_root: str, dag: str) -> str:
    """Named once per DAG, not per job (folder_name checks each character)."""
    return os.path.join(work_root, "dags", folder_name(dag))
