"""The jobs of the MCP server's jobs_json, checked before anything is sent (no MCP SDK needed)."""

from __future__ import annotations

import json

import pytest

from titan.mcp.submissions import inline_job, jobs_from_json, script_file_name


def test_a_dag_becomes_jobs_with_inline_scripts_and_the_originals_fields():
    jobs = jobs_from_json(json.dumps([
        {"job_id": "a", "script_content": "print(1)", "args": "--n 2", "requirement": "GPU", "priority": "5",
         "hitl_message": "ok?"},
        {"job_id": "b/2", "script_content": "print(2)", "parents": "a"},
    ]))
    first, second = jobs
    assert (first.script, first.args, first.requirement, first.priority, first.hitl_message) == \
        (b"print(1)", "--n 2", "GPU", 5, "ok?")
    assert (second.parents, second.requirement, second.to_spec().filename) == (["a"], "GENERAL", "b_2.py")


def test_the_array_itself_is_accepted_as_some_clients_send_it():
    [job] = jobs_from_json([{"job_id": "x", "script_content": "print(1)"}])
    assert job.job_id == "x"


@pytest.mark.parametrize("entries, message", [
    ([{"job_id": "a", "script_content": "1"}, {"job_id": "a", "script_content": "2"}], "'a' appears twice"),
    ([{"job_id": "a", "script_content": "1", "script_name": "s.py"}], "exactly one of script_content"),
    ([{"job_id": "a"}], "exactly one of script_content"),
    ([{"job_id": "a", "script_content": "1", "parents": [3]}], "parents must be a list of job id strings"),
    ([{"job_id": "a", "script_content": "1", "priority": True}], "priority must be an integer, got bool"),
    ([{"job_id": " ", "script_content": "1"}], "jobs_json[0] has no job_id"),
    ([{"job_id": "a", "script_content": "  "}], "script_content is empty"),
])
def test_a_bad_job_is_named_with_what_is_wrong(entries, message):
    with pytest.raises(ValueError) as refused:
        jobs_from_json(json.dumps(entries))
    assert message in str(refused.value)



def test_an_inline_job_is_named_after_its_id():
    assert script_file_name("train model/v2") == "train_model_v2.py"
    assert inline_job("j", "print(1)").to_spec().script == b"print(1)"
