"""TitanJob reads its script once per file while the file stays as it was, and again once it changes."""

from __future__ import annotations

import os
import time

import pytest

from titan_sdk import TitanJob


def settled(path, text: str) -> str:
    """The file as if written a minute ago: old enough for its contents to be trusted by its stat."""
    path.write_text(text)
    past = time.time() - 60
    os.utime(path, (past, past))
    return str(path)


def test_jobs_of_one_script_share_one_copy(tmp_path):
    script = settled(tmp_path / "step.py", "print('step')\n")
    jobs = [TitanJob(f"j{n}", script) for n in range(100)]
    assert all(job.script is jobs[0].script for job in jobs)
    assert jobs[0].script == b"print('step')\n"


def test_an_edited_script_is_read_again_even_at_the_same_size(tmp_path):
    script = settled(tmp_path / "step.py", "print('one')\n")
    assert TitanJob("a", script).script == b"print('one')\n"
    (tmp_path / "step.py").write_text("print('two')\n")   # same size, new mtime
    assert TitanJob("b", script).script == b"print('two')\n"


def test_a_script_written_just_now_is_not_trusted_by_its_stat_alone(tmp_path):
    """Two edits of the same size inside one tick of a coarse clock leave the same stat behind."""
    path = tmp_path / "step.py"
    path.write_text("print('one')\n")
    stamp = os.stat(path).st_mtime_ns
    assert TitanJob("a", str(path)).script == b"print('one')\n"
    path.write_text("print('two')\n")
    os.utime(path, ns=(stamp, stamp))
    assert TitanJob("b", str(path)).script == b"print('two')\n"


def test_a_directory_named_like_a_script_is_not_a_script(tmp_path):
    (tmp_path / "step.py").mkdir()
    job = TitanJob("a", str(tmp_path / "step.py"))
    assert job.script == b"" and job.to_spec().deployed   # the master's deployed step.py, if it has one
    assert "TitanJob script" in job.not_found_locally and "step.py" in job.not_found_locally
