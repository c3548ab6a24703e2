"""The message catalogue (titan.net.messages): outgoing messages, replies and events are built and checked
against it, every message names what was wrong, and the job's field list is written once (JobSpec)."""

from __future__ import annotations

import ast
import dataclasses
import inspect
import pathlib
import typing

import pytest

from tests.unit.sim import Sim, events, spec
from titan.core.jobs import SERVICE_JOB_TYPE, JobRun, JobSpec, gate_id
from titan.net import messages, protocol
from titan.net.protocol import MisbuiltMessage
from titan_sdk import TitanJob
from titan_sdk.job import MS_PER_S
from titan_sdk.pipeline import JOB_KEYS

ROOT = pathlib.Path(__file__).resolve().parents[2]
SPEC_FIELDS = [f.name for f in dataclasses.fields(JobSpec)]


@pytest.fixture
def strict(monkeypatch):
    monkeypatch.setattr(protocol, "STRICT", True)


@pytest.fixture
def lenient(monkeypatch):
    monkeypatch.setattr(protocol, "STRICT", False)


def test_the_test_suite_checks_every_message_strictly():
    """tests/conftest.py turns strict checks on for this process and every master and worker it starts."""
    assert protocol.STRICT


# ----------------------------------------------------------------- building messages


@pytest.mark.parametrize("mode", ["strict", "lenient"])
def test_a_misspelt_field_fails_naming_the_op_and_the_field(mode, request):
    request.getfixturevalue(mode)
    with pytest.raises(MisbuiltMessage, match=r"worker message 'finished' has unknown field\(s\): exitcode"):
        protocol.message(protocol.WORKER_OPS, "finished", job_id="j", attempt=1, exitcode=0)


@pytest.mark.parametrize("mode", ["strict", "lenient"])
def test_a_missing_required_field_fails_naming_the_op_and_the_field(mode, request):
    request.getfixturevalue(mode)
    with pytest.raises(MisbuiltMessage, match=r"master-to-worker message 'ack' is missing field 'attempt'"):
        protocol.message(protocol.MASTER_TO_WORKER_OPS, "ack", job_id="j")


def test_a_wrong_type_fails_in_strict_mode_naming_the_op_and_the_field(strict):
    with pytest.raises(MisbuiltMessage, match=r"client request 'logs': field 'since' must be int or NoneType, "
                                              r"got str"):
        protocol.message(protocol.CLIENT_OPS, "logs", job_id="j", since="0")


def test_the_hot_path_checks_names_only_when_not_strict(lenient):
    built = protocol.message(protocol.CLIENT_OPS, "logs", job_id="j", since="0")
    assert built == {"op": "logs", "job_id": "j", "since": "0"}


def test_strict_checks_go_inside_a_dispatched_job(strict):
    job = {"job_id": "j", "filename": "j.py", "script_sha256": "0" * 64, "priority": "high"}
    with pytest.raises(MisbuiltMessage, match=r"'dispatch': field 'job': field 'priority' must be int"):
        protocol.message(protocol.MASTER_TO_WORKER_OPS, "dispatch", job=job, attempt=1)


def test_strict_checks_go_inside_each_item_of_a_list(strict):
    with pytest.raises(MisbuiltMessage, match=r"'heartbeat': field 'running', item #1 must be str, got int"):
        protocol.message(protocol.WORKER_OPS, "heartbeat", running=["a", 2], ended=[])


def test_an_unknown_op_fails_naming_it_and_the_known_ones():
    with pytest.raises(MisbuiltMessage, match=r"unknown master-to-worker message 'dispatched'; expected one of: "
                                              r"ack, archive_chunk, batch, dispatch"):
        protocol.message(protocol.MASTER_TO_WORKER_OPS, "dispatched", job={}, attempt=1)


def test_a_built_message_is_the_op_then_its_fields_in_the_order_given():
    built = protocol.message(protocol.WORKER_OPS, "finished", job_id="j", attempt=2, exit_code=0, error=None)
    assert list(built.items()) == [("op", "finished"), ("job_id", "j"), ("attempt", 2), ("exit_code", 0),
                                   ("error", None)]
    assert protocol.decode(protocol.encode(built), protocol.WORKER_OPS) == ("finished", built)


# ----------------------------------------------------------------- replies


def test_a_reply_result_of_the_wrong_type_fails_naming_the_op(strict):
    with pytest.raises(MisbuiltMessage, match=r"result of store request 'incr' must be int, got str"):
        protocol.result_reply(protocol.STORE_OPS, "incr", "r1", "3")


def test_a_reply_result_missing_a_field_fails_naming_the_op_and_the_field(strict):
    with pytest.raises(MisbuiltMessage, match=r"result of client request 'ping' is missing field 'seq'"):
        protocol.result_reply(protocol.CLIENT_OPS, "ping", "r1", {"run_id": "abc"})


def test_a_job_description_is_checked_inside_a_dag_status(strict):
    info = JobRun(spec=JobSpec("a", "a.py"), dag="d", seq=1).describe()
    assert protocol.result_reply(protocol.CLIENT_OPS, "status", "r1", info)["result"] is info
    with pytest.raises(MisbuiltMessage, match=r"'dag_status': field 'jobs', item #0 has unknown field\(s\): colour"):
        protocol.result_reply(protocol.CLIENT_OPS, "dag_status", "r2",
                              {"dag": "d", "finished": False, "jobs": [{**info, "colour": "red"}]})


@pytest.mark.parametrize("ops", [messages.CLIENT_OPS, messages.STORE_OPS], ids=["client", "store"])
def test_every_request_op_declares_its_result(ops):
    assert sorted(ops.results) == sorted(ops)


# ----------------------------------------------------------------- events


def test_an_event_with_a_misspelt_field_fails_naming_the_topic_and_the_field():
    body = {"worker": "w", "worker_id": "01", "reason": "gone", "runing": []}
    with pytest.raises(MisbuiltMessage, match=r"event 'worker.left' has unknown field\(s\): runing"):
        protocol.check_event_body("worker.left", body)


def test_an_undeclared_topic_fails_naming_it():
    with pytest.raises(MisbuiltMessage, match=r"event topic 'gate.opened' is not declared"):
        protocol.check_event_body("gate.opened", {})


def test_the_envelope_the_master_adds_is_checked_too():
    body = {"dag": "d", "jobs": 3}
    event = {**body, "topic": "dag.submitted", "seq": 4, "topic_seq": 1, "run_id": "abc", "ts": 1.5}
    protocol.check_event("dag.submitted", event)
    with pytest.raises(MisbuiltMessage, match=r"event 'dag.submitted': field 'seq' must be int, got str"):
        protocol.check_event("dag.submitted", {**event, "seq": "4"})
    with pytest.raises(MisbuiltMessage, match=r"event 'dag.submitted' is missing field 'run_id'"):
        protocol.check_event("dag.submitted", {k: v for k, v in event.items() if k != "run_id"})


def test_a_life_of_jobs_dags_gates_services_and_workers_publishes_only_declared_events():
    """Sim checks every Publish against the catalogue; this life makes every declared topic happen."""
    sim = Sim()
    sim.join("w1", slots=2)
    sim.submit(spec("a", hitl_message="ship it?"), spec("b", ["a"]), spec("c", ["a"]), dag="d1")
    sim.finish("a")
    sim._step(sim.s.approve, gate_id("a"))                 # b and c run
    sim.finish("b", exit_code=1)                           # FAILED
    sim.cancel("c")                                        # CANCELLED; d1 finished
    sim.submit(spec("r", retries=1), dag="d2")
    sim.finish("r", exit_code=1)                           # queued again after a backoff
    sim.submit(spec("svc", job_type=SERVICE_JOB_TYPE, port=8080, retries=1))
    _bring_up(sim, "svc")
    sim.finish("svc", exit_code=3)                         # service.crashed, restart after a backoff
    sim.live_until(sim.now + 30)                           # the worker heartbeats meanwhile
    _bring_up(sim, "svc")
    sim._step(sim.s.stop_service, "svc")                   # service.stopped
    sim.leave("w1")                                        # worker.left
    sim.join("w2")
    sim.tick(sim.now + 60)                                 # worker.dead
    published = {e.topic for e in events(sim.log)}
    assert sorted(set(messages.EVENTS) - published) == []


def _bring_up(sim: Sim, job_id: str) -> None:
    run = sim.run(job_id)
    sim._step(sim.s.service_up, run.worker_id, job_id, run.attempt)


# ----------------------------------------------------------------- the job's field list, written once

# JobSpec fields that a place leaves out on purpose, and why; any other field missing there fails below.
NOT_TITAN_JOB_ARGUMENTS = {"script": "read from `filename` when the job is built",
                           "archive": "pinned from the uploaded project (TitanJob.archive, submit_pipeline)",
                           "deployed": "set when `filename` is not found locally: the master's deployed script"}
NOT_YAML_KEYS = {"script": "read from `file`", "is_archive": "set by `project: true`",
                 "archive": "pinned from the uploaded project by submit_pipeline",
                 "deployed": "set when `file` is not found locally: the master's deployed script"}
NOT_DESCRIBED = {"filename": "", "script": "", "args": "", "is_archive": "", "delay": "", "hitl_message": "",
                 "max_wait_seconds": "", "isolation": "", "archive": "", "deployed": ""}   # `status` has never shown these


def test_the_wire_table_of_a_job_is_every_jobspec_field_and_the_script_hash():
    assert list(messages.JOB_FIELDS) == [*SPEC_FIELDS[:3], "script_sha256", *SPEC_FIELDS[3:]]
    required = [name for name, field in messages.JOB_FIELDS.items() if field.required]
    assert required == [f.name for f in dataclasses.fields(JobSpec) if f.default is dataclasses.MISSING]


def test_every_jobspec_field_is_an_argument_of_titan_job():
    arguments = inspect.signature(TitanJob.__init__).parameters
    for name in SPEC_FIELDS:
        assert name in arguments or name in NOT_TITAN_JOB_ARGUMENTS, \
            f"JobSpec field {name!r} is not an argument of TitanJob (titan_sdk/job.py)"


def test_titan_job_carries_every_jobspec_field_into_its_spec():
    job = TitanJob("j", "project.zip/x.py", is_archive=True)
    hints = typing.get_type_hints(JobSpec)
    expected = {name: _a_value_other_than_the_default(name, hints[name]) for name in SPEC_FIELDS
                if name not in ("job_id", "filename", "is_archive", "deployed")}
    for name, value in expected.items():
        set_to = value * MS_PER_S if name == "delay" else value   # TitanJob.delay is in ms, as in the original
        setattr(job, name, list(set_to) if name == "parents" else set_to)
    made = job.to_spec()
    for name, value in expected.items():
        assert getattr(made, name) == value, f"TitanJob.to_spec() does not carry JobSpec field {name!r}"


def _a_value_other_than_the_default(name: str, hint):
    kind = next(t for t in typing.get_args(hint) or (hint,) if t is not type(None))
    return {str: f"{name}-set", int: 7, float: 2.5, bool: True, bytes: b"set", tuple: ("p1",)}[kind]


def test_every_jobspec_field_is_a_yaml_key_of_the_same_types():
    targets = {target: types for types, target in JOB_KEYS.values()}
    for name in SPEC_FIELDS:
        assert name in targets or name in NOT_YAML_KEYS, \
            f"JobSpec field {name!r} has no YAML key (titan_sdk/pipeline.py JOB_KEYS)"
    for name, types in targets.items():
        converted = name in ("args", "parents")   # a list of arguments, one parent's id: converted first
        assert converted or set(types) <= set(messages.JOB_FIELDS[name].types), \
            f"YAML key for JobSpec field {name!r} takes {types}, the wire {messages.JOB_FIELDS[name].types}"


def test_describe_shows_every_jobspec_field_and_matches_the_catalogue():
    described = JobRun(spec=JobSpec("j", "j.py"), dag=None, seq=1).describe()
    assert list(described) == list(messages.JOB_INFO)
    for name in SPEC_FIELDS:
        assert name in described or name in NOT_DESCRIBED, \
            f"JobSpec field {name!r} is not in JobRun.describe() (titan/core/jobs.py) nor in messages.JOB_INFO"


# ----------------------------------------------------------------- nothing built around the catalogue


def test_no_message_is_a_dict_literal_outside_the_protocol_module():
    """Every outgoing message goes through protocol.message, so its fields are checked."""
    found = []
    for path in sorted([*(ROOT / "titan").rglob("*.py"), *(ROOT / "titan_sdk").rglob("*.py")]):
        if path == ROOT / "titan" / "net" / "protocol.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Dict) and any(isinstance(k, ast.Constant) and k.value == "op" for k in node.keys):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert found == []


def test_a_client_request_checks_names_but_leaves_values_to_the_master(strict):
    """A user's wrong value must reach the master, whose refusal names the field (test_bad_input)."""
    assert protocol.request(protocol.STORE_OPS, "keys", prefix=5) == {"op": "keys", "prefix": 5}
    with pytest.raises(MisbuiltMessage, match=r"store request 'keys' has unknown field\(s\): prefx"):
        protocol.request(protocol.STORE_OPS, "keys", prefx="a")
