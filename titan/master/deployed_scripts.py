"""Scripts deployed on the master under their file name (client.deploy_script), as the original kept them in
its perm_files: a job whose script was not found where it was built runs the one deployed under that name.
Journaled, so they survive a restart; `titan scripts` lists them."""

from __future__ import annotations

import dataclasses
import hashlib
import os
from dataclasses import dataclass
from typing import Dict, List, Optional

from titan.core.errors import RequestRejected, UnknownScript
from titan.core.jobs import JobSpec
from titan.net.jobwire import MAX_FILE_NAME_BYTES


@dataclass
class DeployedScript:
    name: str
    script: bytes
    deployed_at: float          # wall-clock seconds, for people

    def describe(self) -> dict:
        return {"name": self.name, "sha256": hashlib.sha256(self.script).hexdigest(), "size": len(self.script),
                "deployed_at": self.deployed_at}


class DeployedScripts:
    def __init__(self):
        self._by_name: Dict[str, DeployedScript] = {}

    def deploy(self, name: str, script: bytes, deployed_at: float) -> DeployedScript:
        """Keep `script` under `name` (a plain file name), replacing an earlier one of that name."""
        problem = _name_problem(name)
        if problem:
            raise RequestRejected(f"deploy_script: {problem}")
        entry = self._by_name[name] = DeployedScript(name, script, deployed_at)
        return entry

    def restore(self, entries: List[DeployedScript]) -> None:
        self._by_name = {entry.name: entry for entry in entries}

    def list(self) -> List[dict]:
        return [self._by_name[name].describe() for name in sorted(self._by_name)]

    def resolve(self, spec: JobSpec) -> JobSpec:
        """A job marked `deployed` gets the script deployed under its file name; UnknownScript if none is."""
        if not spec.deployed:
            return spec
        name = os.path.basename(spec.filename.replace("\\", "/"))
        entry: Optional[DeployedScript] = self._by_name.get(name)
        if entry is None:
            raise UnknownScript(f"job {spec.job_id!r}: its script {spec.filename!r} was not found where the job was "
                                f"built, and no script named {name!r} is deployed on the master "
                                "(client.deploy_script(path) deploys one; `titan scripts` lists them)",
                                job_id=spec.job_id, name=name)
        return dataclasses.replace(spec, script=entry.script)

    def __len__(self) -> int:
        return len(self._by_name)


def _name_problem(name: str) -> Optional[str]:
    if not name or name in (".", "..") or "/" in name or "\\" in name or "\0" in name:
        return f"a script is deployed under a plain file name (no folders), got {name!r}"
    if len(name.encode("utf-8", "surrogatepass")) > MAX_FILE_NAME_BYTES:
        return f"file name {name[:40]!r}... is longer than {MAX_FILE_NAME_BYTES} bytes"
    return None
