"""Scripts stored on the master by name (`deploy_script`): the MCP tool stores one, and a job of a
submitted DAG may name one (`script_name`) instead of carrying its content."""

from __future__ import annotations

from titan_sdk import TitanClient, TitanJob


def deploy(client: TitanClient, script_name: str, script_content: str) -> dict:
    """Store `script_content` on the master as `script_name`; jobs then run it by that name."""
    if not isinstance(script_name, str) or not script_name.strip():
        raise ValueError(f"script_name must be a non-empty file name, got {script_name!r}")
    client.deploy_script(script_name, content=script_content)
    return {"script_name": script_name, "size_bytes": len(script_content.encode("utf-8"))}


def job_running(job_id: str, script_name: str, options: dict) -> TitanJob:
    """A job that runs the deployed script `script_name` (the master holds its content)."""
    return TitanJob(job_id, script_name, **options)
