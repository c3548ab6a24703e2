"""Job ids and DAG names: control characters and huge names are refused by the SDK and the master's
protocol check alike; every DAG name maps to a folder of its own, never '.' or '..'."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given, settings, strategies as st

from titan import defaults
from titan.core.jobs import JobSpec, spec_to_dict
from titan.core.names import REFUSED_CATEGORIES, folder_name, name_problem
from titan.net import jobwire
from titan.net.protocol import ProtocolError
from titan_sdk import TitanJob

HOSTILE = {
    "NUL": "a\x00b",
    "newline": "job\nINFO forged log line",
    "terminal escape": "x\x1b[2J\x1b[31mred",
    "C1 CSI": "x\x9b31m",
    "bidi override": "evil\u202etxt.sh",
    "line separator": "a\u2028b",
}
ORDINARY = ["DAG-x", "extract_data", "step.1", "train model", "données-3", "a/b", "..", "~"]


@pytest.mark.parametrize("what", sorted(HOSTILE))
def test_control_characters_are_refused_naming_the_character(what):
    problem = name_problem(HOSTILE[what])
    assert problem and "control character U+" in problem


def test_over_long_names_are_refused_and_ordinary_ones_pass():
    assert f"at most {defaults.MAX_ID_CHARS}" in name_problem("x" * (defaults.MAX_ID_CHARS + 1))
    assert name_problem("x" * defaults.MAX_ID_CHARS) is None
    assert [name for name in ORDINARY if name_problem(name)] == []
    assert name_problem("") and name_problem("   ") and name_problem(None)


def test_the_sdk_refuses_a_hostile_job_id_naming_the_field():
    with pytest.raises(ValueError, match=r"job_id 'x\\x1b\[2J.*control character U\+001B"):
        TitanJob("x\x1b[2J", "job.py", content="print(1)")
    with pytest.raises(ValueError, match=f"at most {defaults.MAX_ID_CHARS}"):
        TitanJob("y" * 1_000_000, "job.py", content="print(1)")


def _wire(job_id: str, parents=()) -> dict:
    wire = spec_to_dict(JobSpec(job_id=job_id, filename="job.py", script=b"print(1)", parents=tuple(parents)))
    wire["parents"] = list(parents)
    return wire


@pytest.mark.parametrize("what", sorted(HOSTILE))
def test_the_masters_check_refuses_what_the_sdk_would_have(what):
    """The master is the authority: a client that skips the SDK's check is refused all the same."""
    with pytest.raises(ProtocolError, match="job #0: job_id .*control character"):
        jobwire.job_from_wire(_wire(HOSTILE[what]))
    with pytest.raises(ProtocolError, match="parent .*control character"):
        jobwire.job_from_wire(_wire("ok", parents=[HOSTILE[what]]))


def test_a_huge_refused_id_is_shown_short_in_the_error():
    with pytest.raises(ProtocolError) as refused:
        jobwire.job_from_wire(_wire("z" * 5_000_000))
    assert len(str(refused.value)) < 300 and "5000000 characters" in str(refused.value)


def test_ordinary_ids_pass_the_masters_check_unchanged():
    for name in ORDINARY:
        assert jobwire.job_from_wire(_wire(name)).job_id == name


def test_safe_dag_names_keep_their_folder_name():
    assert [folder_name(name) for name in ("DAG-x", "extract_data", "step.1")] == ["DAG-x", "extract_data", "step.1"]


def test_folder_names_are_never_dot_or_dotdot_nor_hold_a_separator():
    for name in (".", "..", "../..", "/etc", "a/../../b", ".hidden"):
        folder = folder_name(name)
        assert folder not in (".", "..", "") and "/" not in folder and not folder.startswith("."), (name, folder)


def test_different_dag_names_get_different_folders():
    names = ["a b", "a_b", "a/b", "a?b", "..", "_.", "x" * 41, "x" * 40 + "y", "x" * 40,
             "a b~" + "0" * 16, folder_name("a b")]
    folders = [folder_name(name) for name in names]
    assert len(set(folders)) == len(names), dict(zip(names, folders))


@settings(max_examples=500, deadline=None)
@given(st.text(min_size=1, max_size=40))
def test_the_printable_shortcut_refuses_exactly_what_the_character_check_does(name):
    """name_problem skips its per-character check for str.isprintable() names: it must agree with it."""
    refused = [c for c in name if unicodedata.category(c) in REFUSED_CATEGORIES]
    problem = name_problem(name)
    if name.strip() and len(name) <= defaults.MAX_ID_CHARS:
        assert (problem is not None) == bool(refused), (name, problem)
