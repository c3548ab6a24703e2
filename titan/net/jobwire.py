"""Jobs as they travel: a JobSpec without its default fields (job_to_wire), a submission naming each
script once by its sha256 (submission), and a job checked on its way in (job_from_wire), every complaint
naming the job and what was wrong."""

from __future__ import annotations

import functools
import hashlib
from typing import Dict, Optional, Tuple

from titan.core.names import name_problem, shown_name
from titan.core.jobs import ISOLATIONS, JOB_TYPE_ALIASES, SERVICE_JOB_TYPE, JobSpec, spec_to_dict
from titan.net.fields import ProtocolError, check_fields, is_plain
from titan.net.messages import JOB_FIELDS

MAX_FILE_NAME_BYTES = 255   # what common file systems allow for one path component
MAX_PORT = 65535


def job_to_wire(spec: JobSpec) -> dict:
    """A job as it travels: default values are left out, the receiver fills them in."""
    return spec_to_dict(spec)


def submission(specs) -> dict:
    """The fields of a "submit" request: the jobs, naming their scripts by hash, and each script once."""
    scripts: Dict[str, bytes] = {}
    digests: Dict[bytes, str] = {}
    jobs = []
    for spec in specs:
        wire = spec_to_dict(spec)
        script = wire.pop("script")
        digest = digests.get(script)
        if digest is None:
            digest = digests[script] = script_digest(script)
            scripts[digest] = script
        wire["script_sha256"] = digest
        jobs.append(wire)
    return {"jobs": jobs, "scripts": scripts}


def script_digest(script: bytes) -> str:
    return hashlib.sha256(script).hexdigest()


def submitted_scripts(raw) -> Dict[str, bytes]:
    """A submission's "scripts" map, checked: each key must be the sha256 of its script."""
    scripts = raw or {}
    for digest, script in scripts.items():
        if not isinstance(digest, str) or not isinstance(script, bytes):
            raise ProtocolError("'submit' message: 'scripts' must map sha256 hex strings to script bytes")
        if script_digest(script) != digest:
            raise ProtocolError(f"'submit' message: script {digest[:16]}... does not have that sha256")
    return scripts


_ISOLATION_CHOICES = (None, *ISOLATIONS)
_JOB_FIELD_TYPES = {name: field.types for name, field in JOB_FIELDS.items()}
_REQUIRED_JOB_FIELDS = frozenset(name for name, field in JOB_FIELDS.items() if field.required)


def job_from_wire(raw, index: int = 0, same_script=lambda script: script,
                  scripts: Optional[Dict[str, bytes]] = None) -> JobSpec:
    """A JobSpec from its wire form, its script inline or named by hash from `scripts`. `same_script`
    may return an equal script already held, so many jobs of one script share one copy in memory."""
    if not isinstance(raw, dict):
        raise ProtocolError(f"job #{index} must be a map, got {type(raw).__name__}")
    if not is_plain(raw, _JOB_FIELD_TYPES, _REQUIRED_JOB_FIELDS):   # the exact check, for its message
        check_fields(_job_label(raw, index), raw, JOB_FIELDS)
    problem = name_problem(raw["job_id"])
    if problem:
        raise ProtocolError(f"job #{index}: job_id {shown_name(raw['job_id'])} {problem}")
    _use_canonical_job_type(raw)
    problem = _filename_problem(raw["filename"])
    if problem:
        raise ProtocolError(f"{_job_label(raw, index)}: {problem}")
    if raw.get("is_archive"):
        _check_archive_filename(_job_label(raw, index), raw["filename"])
    if raw.get("archive") is not None and not is_sha256(raw["archive"]):
        raise ProtocolError(f"{_job_label(raw, index)}: archive must be a sha256 in hex, got {raw['archive'][:80]!r}")
    parents = raw.get("parents") or ()
    if parents:   # most jobs of a big DAG have none
        _check_parents(raw, index, parents)
    if (raw.get("retries") or 0) < 0 or (raw.get("timeout") is not None and raw["timeout"] <= 0):
        raise ProtocolError(f"{_job_label(raw, index)}: retries must be >= 0 and timeout > 0 seconds")
    problem = _port_problem(raw)
    if problem:
        raise ProtocolError(f"{_job_label(raw, index)}: {problem}")
    if raw.get("isolation") not in _ISOLATION_CHOICES:
        raise ProtocolError(f"{_job_label(raw, index)}: isolation must be one of {', '.join(ISOLATIONS)}, "
                            f"got {raw['isolation']!r}")
    present = {k: v for k, v in raw.items() if v is not None and k != "parents" and k != "script_sha256"}
    present["script"] = same_script(_job_script(raw, index, scripts))
    return JobSpec(parents=tuple(parents), **present)


def _check_parents(raw: dict, index: int, parents: list) -> None:
    if not all(isinstance(p, str) for p in parents):
        raise ProtocolError(f"{_job_label(raw, index)}: every parent must be a job id string")
    for parent in parents:
        if name_problem(parent):
            raise ProtocolError(f"{_job_label(raw, index)}: parent {shown_name(parent)} {name_problem(parent)}")


def _use_canonical_job_type(raw: dict) -> None:
    """job_type="DEPLOY_PAYLOAD" (the original's) is a SERVICE."""
    if raw.get("job_type") in JOB_TYPE_ALIASES:
        raw["job_type"] = JOB_TYPE_ALIASES[raw["job_type"]]


def _job_script(raw: dict, index: int, scripts: Optional[Dict[str, bytes]]) -> bytes:
    digest, script = raw.get("script_sha256"), raw.get("script")
    if (digest is None) == (script is None):
        raise ProtocolError(f"{_job_label(raw, index)} must carry either 'script' or 'script_sha256'")
    if script is not None:
        return script
    found = (scripts or {}).get(digest)
    if found is None:
        raise ProtocolError(f"{_job_label(raw, index)}: script_sha256 {digest[:16]}... is not among the "
                            "submission's scripts")
    return found


def _port_problem(raw: dict) -> Optional[str]:
    port = raw.get("port") or 0
    if not 0 <= port <= MAX_PORT:
        return f"port must be between 1 and {MAX_PORT} (0: none), got {port}"
    if raw.get("job_type") == SERVICE_JOB_TYPE and not port:
        return f"a {SERVICE_JOB_TYPE} job needs the port it listens on (port=...)"
    return None


def _job_label(raw: dict, index: int) -> str:
    return f"job {raw.get('job_id')!r}" if isinstance(raw.get("job_id"), str) else f"job #{index}"


@functools.lru_cache(maxsize=1024)   # many jobs share a file name
def _filename_problem(filename: str) -> Optional[str]:
    """Why the worker could not save the script under the last part of this name, or None."""
    name = filename.replace("\\", "/").rsplit("/", 1)[-1]
    if name in ("", ".", "..") or "\0" in filename:
        return f"filename {filename!r} does not end in a usable file name"
    if len(name.encode("utf-8", "surrogatepass")) > MAX_FILE_NAME_BYTES:
        return f"filename {name[:40]!r}... is longer than {MAX_FILE_NAME_BYTES} bytes"
    return None


def split_archive_filename(filename: str) -> Tuple[str, str]:
    """'project.zip/src/step.py' -> ('project.zip', 'src/step.py'): the archive is named by everything up to
    the first path component ending in '.zip'. Raises ValueError saying what is wrong."""
    parts = filename.replace("\\", "/").split("/")
    ends = [i for i, part in enumerate(parts[:-1]) if part.endswith(".zip")]
    if not ends:
        raise ValueError(f"filename {filename!r} of an archive job must be '<archive>.zip/<path in it>'")
    archive, inner = "/".join(parts[:ends[0] + 1]), [p for p in parts[ends[0] + 1:] if p not in ("", ".")]
    if not inner or ".." in inner:
        raise ValueError(f"filename {filename!r}: the path inside archive {archive!r} must be relative "
                         "and stay inside it (no '..')")
    return archive, "/".join(inner)


def _check_archive_filename(label: str, filename: str) -> None:
    try:
        split_archive_filename(filename)
    except ValueError as exc:
        raise ProtocolError(f"{label}: {exc}") from None


def is_sha256(text: str) -> bool:
    return len(text) == 64 and all(c in "0123456789abcdef" for c in text)
