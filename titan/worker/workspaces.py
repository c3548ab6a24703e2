"""Job workspaces, kept for the next job when the last one left nothing in them.

A job's workspace is a folder of its own that holds its script (a DAG's jobs run in their DAG's folder,
so theirs holds nothing else). Making one (mkdtemp, writing the script) and removing it afterwards cost
several hundred microseconds of file-system work here, more than running a job in the pool does. So a
workspace whose job left it as it was given (only the script, unchanged, folder mode unchanged) is kept
as a spare (renamed `.titan-spare-<suffix>` at once, so the finished job's folder is gone as before); the
next job gets it renamed to its own name (`titan-<job id>-<attempt>-<suffix>`), with its own script
written in only if the script differs. A job therefore still finds a folder of its own holding
just its script; anything else is removed as before (off the worker's loop, sweeper.py).
"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass
from typing import List, Optional, Tuple

from titan import defaults
from titan.worker.sweeper import SWEEPER

FOLDER_MODE = 0o700   # as mkdtemp makes it
SPARE_PREFIX = ".titan-spare-"
_SAFE_NAME = re.compile(r"[\w.-]*", re.ASCII)   # what safe_name keeps as it is (ASCII: isalnum is wider)


@dataclass
class Workspace:
    path: str
    script_name: str = ""          # its only file, for a workspace that may be kept ("" for a project copy)
    script: Optional[bytes] = None
    script_stat: Tuple[int, ...] = ()   # the script as written: (inode, size, mtime_ns, mode)


class Workspaces:
    def __init__(self, work_root: str, spares: int = defaults.WORKSPACE_SPARES) -> None:
        self.work_root, self.max_spares = work_root, spares
        self._spares: List[Workspace] = []

    def make(self, job_id: str, attempt: int) -> Workspace:
        """An empty workspace for a job whose folder is filled otherwise (a project copy); never kept."""
        return Workspace(tempfile.mkdtemp(prefix=_prefix(job_id, attempt), dir=self.work_root))

    def with_script(self, job_id: str, attempt: int, name: str, script: bytes) -> Workspace:
        """A workspace holding only `script` as `name`: a spare renamed for this job, or a new one."""
        spare = self._take_spare(name, script)
        if spare is None:
            workspace = self.make(job_id, attempt)
        else:
            workspace = Workspace(os.path.join(self.work_root, _prefix(job_id, attempt) + _suffix(spare.path)))
            os.rename(spare.path, workspace.path)
            if spare.script_name == name and spare.script == script:
                workspace.script_name, workspace.script, workspace.script_stat = name, script, spare.script_stat
                return workspace
            os.unlink(os.path.join(workspace.path, spare.script_name))
        _write_script(workspace, name, script)
        return workspace

    def finished(self, workspace: Workspace) -> None:
        """The job is over: keep its workspace as a spare if it is as the job got it, else remove it."""
        if len(self._spares) < self.max_spares and _untouched(workspace):
            spare_path = os.path.join(self.work_root, SPARE_PREFIX + _suffix(workspace.path))
            try:
                os.rename(workspace.path, spare_path)
            except OSError:
                SWEEPER.remove(workspace.path)
                return
            workspace.path = spare_path
            self._spares.append(workspace)
        else:
            SWEEPER.remove(workspace.path)

    def remove_spares(self) -> None:
        for spare in self._spares:
            SWEEPER.remove(spare.path)
        self._spares.clear()

    def _take_spare(self, name: str, script: bytes) -> Optional[Workspace]:
        for index, spare in enumerate(self._spares):
            if spare.script_name == name and spare.script == script:
                return self._spares.pop(index)
        return self._spares.pop() if self._spares else None


def _write_script(workspace: Workspace, name: str, script: bytes) -> None:
    path = os.path.join(workspace.path, name)
    with open(path, "wb") as handle:
        handle.write(script)
    os.chmod(path, 0o755)
    workspace.script_name, workspace.script, workspace.script_stat = name, script, _stat(path)


def _untouched(workspace: Workspace) -> bool:
    if not workspace.script_name:
        return False
    try:
        return (os.listdir(workspace.path) == [workspace.script_name]
                and os.stat(workspace.path).st_mode & 0o7777 == FOLDER_MODE
                and _stat(os.path.join(workspace.path, workspace.script_name)) == workspace.script_stat)
    except OSError:
        return False


def _stat(path: str) -> Tuple[int, ...]:
    found = os.stat(path, follow_symlinks=False)
    return (found.st_ino, found.st_size, found.st_mtime_ns, found.st_mode)


def _prefix(job_id: str, attempt: int) -> str:
    return f"titan-{safe_name(job_id)}-{attempt}-"


def _suffix(path: str) -> str:
    """The random part of a spare's name (after its job id and attempt): unique in the folder already."""
    return os.path.basename(path).rsplit("-", 1)[-1]


def safe_name(text: str) -> str:
    text = text[:40]
    if _SAFE_NAME.fullmatch(text):   # the usual job id, checked in one C call rather than per character
        return text
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)
