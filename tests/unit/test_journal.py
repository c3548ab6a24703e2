"""The SQLite journal on its own: what is written comes back, scripts are kept once, old rows still load."""

from __future__ import annotations

import hashlib
import sqlite3

import msgpack

from titan.core.jobs import JobRun, JobSpec, JobState
from titan.core.journal import Journal


def run(job_id: str, seq: int, script: bytes = b"print('ok')\n", **fields) -> JobRun:
    return JobRun(spec=JobSpec(job_id=job_id, filename=f"{job_id}.py", script=script, **fields), dag="d", seq=seq)


def record(journal: Journal, new_run: JobRun, replaces_earlier_run: bool = False) -> None:
    journal.record_submission(new_run, replaces_earlier_run, hashlib.sha256(new_run.spec.script).hexdigest())


def test_runs_come_back_as_they_were_recorded(tmp_path):
    journal = Journal(str(tmp_path))
    runs = [run("a", 1, priority=7, requirement="GPU", args="--x 1", timeout=2.5),
            run("b", 2, parents=("a",), retries=3), run("c", 3, script=b"\x00\xffother")]
    runs[0].state, runs[0].attempt, runs[0].worker = JobState.RUNNING, 1, "w1"
    for each in runs:
        record(journal, each)
    journal.commit()
    journal.close()
    loaded = {r.job_id: r for r in Journal(str(tmp_path)).load().runs}
    assert {job_id: r.spec for job_id, r in loaded.items()} == {r.job_id: r.spec for r in runs}
    assert (loaded["a"].state, loaded["a"].attempt, loaded["a"].worker) == (JobState.RUNNING, 1, "w1")


def test_a_script_shared_by_many_jobs_is_stored_once(tmp_path):
    journal = Journal(str(tmp_path))
    shared = b"print('shared')\n"
    for seq in range(1, 51):
        record(journal, run(f"j{seq}", seq, script=shared))
    journal.commit()
    record(journal, run("late", 51, script=shared))
    journal.commit()
    (count,) = journal.db.execute("SELECT COUNT(*) FROM scripts").fetchone()
    assert count == 1
    journal.close()
    assert {r.spec.script for r in Journal(str(tmp_path)).load().runs} == {shared}


def test_specs_written_with_the_script_inline_still_load(tmp_path):
    """Journals from before scripts were kept by hash hold each script in its spec."""
    Journal(str(tmp_path)).close()
    db = sqlite3.connect(str(tmp_path / "titan.db"))
    spec = {"job_id": "old", "filename": "old.py", "script": b"print('old')\n", "parents": [], "priority": 4}
    db.execute("INSERT INTO job_specs VALUES (1, 'old', NULL, ?)", (msgpack.packb(spec, use_bin_type=True),))
    db.execute("INSERT INTO job_states VALUES ('old', 1, 'QUEUED', 0, 0, NULL, NULL, NULL, NULL, NULL)")
    db.commit()
    db.close()
    (loaded,) = Journal(str(tmp_path)).load().runs
    assert loaded.spec == JobSpec(job_id="old", filename="old.py", script=b"print('old')\n", priority=4)
    assert loaded.state == JobState.QUEUED


def test_a_new_run_of_an_id_replaces_the_old_runs_spec_and_logs(tmp_path):
    journal = Journal(str(tmp_path))
    record(journal, run("j", 1, script=b"first"))
    journal.record_log("j", 1, 1, "stdout", "from the first run\n")
    journal.commit()
    record(journal, run("j", 2, script=b"second"), replaces_earlier_run=True)
    journal.commit()
    journal.close()
    recovered = Journal(str(tmp_path)).load()
    assert [(r.seq, r.spec.script) for r in recovered.runs] == [(2, b"second")]
    assert recovered.logs == []
