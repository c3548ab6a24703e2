"""Scripts stored on the master by name (`deploy_script`), kept apart because the SDK side of them,
`TitanClient.deploy_script(filepath, content=None)` and a TitanJob whose filename names a deployed script,
lands with the SDK-compatibility work (issue 13). Until the client has deploy_script, both functions
here raise an error that says so; nothing else in titan.mcp depends on how deployment works."""

from __future__ import annotations

from titan_sdk import TitanClient, TitanJob

NOT_YET = ("this Titan SDK cannot store scripts on the master yet (TitanClient.deploy_script is missing); "
           "send the script itself as script_content instead")


def supported() -> bool:
    return callable(getattr(TitanClient, "deploy_script", None))


def deploy(client: TitanClient, script_name: str, script_content: str) -> dict:
    """Store `script_content` on the master as `script_name`; jobs then run it by that name."""
    if not supported():
        raise NotImplementedError(NOT_YET)
    if not isinstance(script_name, str) or not script_name.strip():
        raise ValueError(f"script_name must be a non-empty file name, got {script_name!r}")
    client.deploy_script(script_name, content=script_content)
    return {"script_name": script_name, "size_bytes": len(script_content.encode("utf-8"))}


def job_running(job_id: str, script_name: str, options: dict) -> TitanJob:
    """A job that runs the deployed script `script_name` (the master holds its content)."""
    if not supported():
        raise NotImplementedError(NOT_YET)
    return TitanJob(job_id, script_name, **options)
