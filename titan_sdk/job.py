"""TitanJob: one unit of work, with the same arguments as the original Titan SDK."""

from __future__ import annotations

import base64
import contextlib
import os
import shlex
import stat
import sys
import time
from typing import Dict, Iterable, List, Optional, Sequence, Tuple, Union

from titan import defaults
from titan.core.errors import UnknownScript
from titan.core.jobs import JobSpec
from titan.core.names import name_problem, shown_name
from titan.core.store import INT64_MAX, INT64_MIN
from titan.net.fields import number_problem
from titan.net.jobwire import split_archive_filename


class TitanJob:
    """A script to run on the cluster, and how.

    The script file is read when the job is built and its bytes travel with the job, so nothing has to
    exist on the worker beforehand. A script not found here runs the one deployed on the master under its
    file name (client.deploy_script); if none is, submitting raises FileNotFoundError (UnknownScript)
    naming where it was looked for. A local file wins over a deployed one of the same name.

    Arguments:
      job_id       unique id of this job on the master.
      filename     the script: `.py` runs with the worker's Python, `.sh` with bash, anything else directly.
                   A relative path is looked up in the current directory, then beside the running script.
      args         command-line arguments: one string, split like a shell would where it parses as shell
                   words, else at whitespace as the original did (so args="it's" is one argument "it's");
                   a list is taken as the arguments themselves.
      parents      ids of jobs that must COMPLETE before this one starts.
      priority     higher runs first among ready jobs; ties go first-come-first-served.
      requirement  capability a worker must offer (GENERAL: any worker).
      delay        MILLISECONDS (as in the original Titan SDK) to hold the job back once it is ready (its
                   parents completed) before queueing it: delay=5000 is five seconds. (The YAML `delay:`
                   key is in seconds, as in the original YAML.) job_info()["reason"] shows the time left.
      affinity     True: run on the worker that ran the job's first parent (to use that parent's files,
                   e.g. in TITAN_DAG_DIR); if that worker is gone, any capable worker runs it and
                   job_info()["note"] says so.
      retries      how many failed attempts are run again (after a backoff doubling from 1 s); the
                   last failure is final. Every attempt's logs are kept, marked by attempt.
      timeout      seconds one attempt may run; past it its whole process tree is killed and the
                   attempt fails with reason "timeout".
      isolation    how a .py job runs on its worker. None (default): as the worker's --isolation says.
                   "pool": in one of the worker's warm interpreters, which run jobs one after another
                   (fastest: tens of microseconds; modules stay imported between jobs); "fork": in a
                   child forked from a warm interpreter (a few milliseconds); "process": in a fresh
                   interpreter, for jobs that need one. Other scripts always get a fresh process.
                   What a job can tell apart between them: README.md, "Isolation".

      is_archive   True: `filename` is '<archive>.zip/<path in it>', naming a project folder uploaded with
                   client.upload_project_folder(folder, '<archive>'). The job runs with (a copy
                   of) the extracted project as its working directory, the project on PYTHONPATH, and
                   the script at that path; nothing is read locally. The master pins the archive's
                   content when the job is submitted, so re-uploading under the same name later does not
                   change what this job runs.

    job_type="SERVICE" with a `port` makes a long-running service: it stays RUNNING, and its children
    start once 127.0.0.1:port accepts connections (while it keeps running). Any exit restarts it after
    the retry backoff, without limit unless `retries` is set; a port already in use fails it at once.
    client.stop_service(job_id) ends it for good (COMPLETED, "stopped by request").

    hitl_message adds a human-in-the-loop gate after the job, named hitl-gate-<job_id>: the job's children
    wait until someone calls client.approve(gate) (or `titan approve GATE`); client.reject(gate, reason)
    cancels them; with no decision within max_wait_seconds (default 48 h) the gate fails.

    Every job sees TITAN_DAG_DIR: a folder shared by the jobs of its DAG on the same worker.

    content=<str or bytes> gives the script itself (an agent's generated code, say): nothing is read from
    disk and nothing is written; `filename` then only names the script on the worker, its suffix saying
    how it runs. A str is sent as UTF-8.

    As in the original, `job.id` is the job's id (`job.job_id` is the same attribute).
    """

    def __init__(self, job_id: str, filename: str, job_type: str = "RUN_PAYLOAD",
                 args: Union[str, Iterable[str], None] = "", parents: Optional[List[str]] = None,
                 port: int = 0, is_archive: bool = False, priority: int = defaults.DEFAULT_PRIORITY,
                 delay: float = 0, affinity: bool = False, requirement: str = defaults.DEFAULT_REQUIREMENT,
                 hitl_message: Optional[str] = None,
                 max_wait_seconds: float = defaults.DEFAULT_MAX_WAIT_SECONDS,
                 retries: int = 0, timeout: Optional[float] = None, isolation: Optional[str] = None,
                 content: Union[str, bytes, None] = None):
        if name_problem(job_id):
            raise ValueError(f"job_id {shown_name(job_id)} {name_problem(job_id)}")
        if isinstance(parents, str):
            parents = [parents]
        self.job_id = job_id
        self.filename = filename
        self.job_type = job_type
        self.args = args if isinstance(args, str) else shlex.join(args or [])
        self.parents = list(parents or [])
        self.port = port
        self.is_archive = is_archive
        self.priority = priority
        self.delay = delay
        self.affinity = affinity
        self.requirement = requirement or defaults.DEFAULT_REQUIREMENT
        self.hitl_message = hitl_message
        self.max_wait_seconds = max_wait_seconds
        self.retries = retries
        self.timeout = timeout
        self.isolation = isolation
        self.archive: Optional[str] = None   # sha256 of the archive, when the submitter already knows it
        # Not found here: the script deployed on the master under this file name (client.deploy_script).
        self.not_found_locally: Optional[str] = None
        _refuse_unusable_numbers(job_id, self)
        if is_archive:
            if content is not None:
                raise ValueError(f"job {job_id!r}: an archive job runs a file of its archive; it takes no content")
            split_archive_filename(filename)   # ValueError now, rather than a refusal at submit
            self.script = b""
        else:
            if content is None:
                self.script, self.not_found_locally = _local_script(filename)
            else:
                self.script = _content_bytes(job_id, content)

    @property
    def id(self) -> str:
        """The original SDK's name for job_id."""
        return self.job_id

    @id.setter
    def id(self, value: str) -> None:
        self.job_id = value

    @property
    def payload_b64(self) -> str:
        """The script as base64, as the original kept it ("REMOTE_ASSET" for an archive job)."""
        return "REMOTE_ASSET" if self.is_archive else base64.b64encode(self.script).decode("ascii")

    def to_spec(self) -> JobSpec:
        spec = JobSpec(
            job_id=self.job_id, script=self.script,
            filename=self.filename if self.is_archive else os.path.basename(self.filename),
            job_type=self.job_type, args=self.args, parents=tuple(self.parents), port=int(self.port),
            is_archive=bool(self.is_archive), priority=int(self.priority), delay=_delay_seconds(self.delay),
            affinity=bool(self.affinity), requirement=self.requirement, hitl_message=self.hitl_message,
            max_wait_seconds=float(self.max_wait_seconds), retries=int(self.retries),
            timeout=None if self.timeout is None else float(self.timeout), isolation=self.isolation,
            archive=self.archive, deployed=self.not_found_locally is not None)
        _refuse_unusable_numbers(self.job_id, spec)   # also what float() made of a string, or a later edit
        return spec

    def __repr__(self) -> str:
        parents = f", parents={self.parents}" if self.parents else ""
        return f"TitanJob({self.job_id!r}, {self.filename!r}, requirement={self.requirement!r}{parents})"


NUMBER_FIELDS = ("port", "priority", "delay", "max_wait_seconds", "retries", "timeout")


def _refuse_unusable_numbers(job_id: str, job) -> None:
    """A NaN max_wait_seconds froze every timer of the master; a priority past 64 bits broke its journal."""
    try:
        seconds = job.delay + job.max_wait_seconds + (job.timeout or 0)
        counts = (job.port, job.priority, job.retries)
        if seconds - seconds == 0 and INT64_MIN <= min(counts) and max(counts) <= INT64_MAX:
            return   # the common case at a fraction of the cost: DAGs of 100,000 jobs check each twice
    except TypeError:
        pass   # not numbers (yet): to_spec converts them, then checks again
    for name in NUMBER_FIELDS:
        problem = number_problem(getattr(job, name))
        if problem:
            raise ValueError(f"job {job_id!r}: {name} {problem}")


def _content_bytes(job_id: str, content) -> bytes:
    if isinstance(content, str):
        return content.encode("utf-8")
    if isinstance(content, (bytes, bytearray)):
        return bytes(content)
    raise TypeError(f"content of job {job_id!r} must be str or bytes, got {type(content).__name__}")


@contextlib.contextmanager
def local_lookup_told(jobs: Sequence["TitanJob"]):
    """A script neither found locally nor deployed: the master's refusal, with where it was looked for."""
    try:
        yield
    except UnknownScript as exc:
        local = {job.job_id: job.not_found_locally for job in jobs}
        where = local.get(exc.details.get("job_id"))
        if where:
            raise UnknownScript(f"{where}, and no script named {exc.details.get('name')!r} is deployed on the "
                                "master (client.deploy_script(path) deploys one)", **exc.details) from None
        raise


MS_PER_S = 1000.0


def _delay_seconds(delay_ms) -> float:
    """TitanJob.delay is in milliseconds, as in the original SDK; the scheduler counts seconds."""
    return float(delay_ms) / MS_PER_S


# Scripts read lately, by path: 100,000 jobs of one script read it once and share one copy in memory.
# A file changed within SETTLE_S of its reading is read again each time, as git does for racy files:
# an edit that keeps the size within a coarse clock tick would otherwise go unseen.
_SCRIPT_CACHE: Dict[str, Tuple[tuple, bytes]] = {}
SCRIPT_CACHE_SIZE = 256
SETTLE_S = 2.0


def _local_script(filename: str) -> Tuple[bytes, Optional[str]]:
    """(the script, None), or (b"", why it was not found here) for a script to take from the master."""
    try:
        return _read_script(filename), None
    except FileNotFoundError as exc:
        return b"", str(exc)


def _read_script(filename: str) -> bytes:
    candidates = [filename]
    if not os.path.isabs(filename) and sys.argv and sys.argv[0]:
        candidates.append(os.path.join(os.path.dirname(os.path.abspath(sys.argv[0])), filename))
    for path in candidates:
        try:
            found = os.stat(path)
        except OSError:
            continue
        if stat.S_ISREG(found.st_mode):
            return _cached_read(path, found)
    tried = " or ".join(repr(os.path.abspath(p)) for p in dict.fromkeys(candidates))
    raise FileNotFoundError(f"TitanJob script {filename!r} not found (looked for {tried})")


def _cached_read(path: str, found: os.stat_result) -> bytes:
    version = (found.st_dev, found.st_ino, found.st_size, found.st_mtime_ns)
    cached = _SCRIPT_CACHE.get(path)
    if cached is not None and cached[0] == version:
        return cached[1]
    with open(path, "rb") as handle:
        script = handle.read()
    if time.time() - found.st_mtime > SETTLE_S:
        if len(_SCRIPT_CACHE) >= SCRIPT_CACHE_SIZE:
            del _SCRIPT_CACHE[next(iter(_SCRIPT_CACHE))]
        _SCRIPT_CACHE[path] = (version, script)
    return script
