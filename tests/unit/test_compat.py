"""What the original Titan's users rely on, below the wire: delays shown with their time left, and
argument strings split as the original split them."""

from __future__ import annotations

from titan.core.jobs import split_args
from tests.unit.sim import P, Q, Sim, spec


def test_a_delayed_job_says_so_with_the_time_left():
    sim = Sim()
    sim.join("w1")
    sim.submit(spec("later", delay=5.0))
    sim.tick(to=1.5)
    info = sim.s.describe_job("later", sim.now)
    assert sim.state("later") == P
    assert info["reason"] == "delayed: starts in 3.5s (delay 5s)"
    sim.tick(to=5.0)
    assert sim.state("later") != P and sim.s.describe_job("later", sim.now)["reason"] is None


def test_a_job_waiting_on_its_parent_is_not_called_delayed():
    sim = Sim()
    sim.submit(spec("first"), spec("second", parents=["first"], delay=5.0))
    assert sim.state("first") == Q
    assert sim.s.describe_job("second", sim.now)["reason"] is None


def test_args_split_as_a_shell_would_where_they_parse():
    assert split_args('--name "two words" -x') == ["--name", "two words", "-x"]
    assert split_args("") == [] and split_args(None) == []


def test_args_that_do_not_parse_as_shell_words_split_at_whitespace_as_the_original():
    assert split_args("it's fine") == ["it's", "fine"]
    assert split_args('say "hello') == ["say", '"hello']


def test_a_parent_spelt_dag_prefix_is_that_job_unless_a_job_has_that_very_name():
    from titan.master.requests import _parents_without_dag_prefix

    known = {"root": object(), "DAG-real": object()}
    specs = [spec("a", parents=["DAG-root", "DAG-real", "DAG-b"]), spec("b"), spec("DAG-b")]
    rewritten = _parents_without_dag_prefix(specs, known)
    assert rewritten[0].parents == ("root", "DAG-real", "DAG-b") and rewritten[1:] == specs[1:]


def test_deploy_payload_is_a_service_and_needs_its_port():
    import pytest
    from titan.net.jobwire import job_from_wire
    from titan.net.protocol import ProtocolError

    wire = {"job_id": "api", "filename": "api.py", "script": b"", "job_type": "DEPLOY_PAYLOAD", "port": 8080}
    assert job_from_wire(wire).job_type == "SERVICE"
    with pytest.raises(ProtocolError, match="needs the port"):
        job_from_wire({**wire, "port": 0})
