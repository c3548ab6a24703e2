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


@pytest.mark.parametrize("field, value, problem", [
    ("max_wait_seconds", float("nan"), "must be a finite number, got nan"),
    ("delay", float("inf"), "must be a finite number, got inf"),
    ("timeout", float("-inf"), "must be a finite number, got -inf"),
    ("max_wait_seconds", "nan", "must be a finite number, got nan"),   # what float() would make of it
    ("priority", 2 ** 63, "must be a signed 64-bit integer"),
])
def test_a_number_no_timer_or_journal_can_hold_is_refused_naming_the_job_and_field(tmp_path, field, value,
                                                                                  problem):
    path = tmp_path / "ok.py"
    path.write_text("print('ok')\n")
    with pytest.raises(ValueError, match=f"job 'j': {field} {problem}"):
        TitanJob("j", str(path), **{field: value}).to_spec()


def test_a_number_set_after_the_job_was_built_is_checked_when_it_is_sent(tmp_path):
    path = tmp_path / "ok.py"
    path.write_text("print('ok')\n")
    job = TitanJob("late", str(path))
    job.max_wait_seconds = float("nan")
    with pytest.raises(ValueError, match="job 'late': max_wait_seconds must be a finite number"):
        job.to_spec()


def test_a_job_made_from_content_reads_and_writes_no_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    job = TitanJob("gen", "generated.py", content="print('hi')\n")
    assert job.script == b"print('hi')\n"
    assert job.to_spec().filename == "generated.py"
    assert list(tmp_path.iterdir()) == []
    assert TitanJob("raw", "x.sh", content=b"echo hi\n").script == b"echo hi\n"


def test_content_must_be_text_or_bytes_and_not_for_an_archive_job():
    with pytest.raises(TypeError, match="content of job 'bad' must be str or bytes, got int"):
        TitanJob("bad", "bad.py", content=3)
    with pytest.raises(ValueError, match="takes no content"):
        TitanJob("arch", "p.zip/main.py", is_archive=True, content="print(1)")

