"""A damaged journal is refused, naming the file and the damage, never loaded wrong: row checksums catch
a changed value, the commit counter beside the journal catches a WAL that lost acknowledged commits, and
random damage either loads exactly what was written or is refused."""

from __future__ import annotations

import hashlib
import os
import random
import shutil

import pytest

from titan.core.jobs import JobRun, JobSpec, JobState
from titan.master.journal import JournalCorrupt
from titan.master.journal_check import COUNTER_SUFFIX
from titan.master.sqlite_journal import FILE_NAME, SqliteJournal

WAL_HEADER, WAL_FRAME_HEADER, PAGE = 32, 24, 4096
FUZZ_SEEDS = 60


def filled_journal(folder, jobs: int = 30, keys: int = 30) -> SqliteJournal:
    journal = SqliteJournal(str(folder))
    for n in range(jobs):
        run = JobRun(spec=JobSpec(job_id=f"job-{n}", filename="j.py", script=f"print({n})".encode(),
                                  args=f"--n {n}"), dag="d" if n % 2 else None, seq=n + 1)
        run.state, run.attempt, run.worker = JobState.RUNNING, 1, f"w{n % 3}"
        journal.record_submission(run, None, hashlib.sha256(run.spec.script).hexdigest())
        journal.record_log(run.job_id, run.seq, 1, "stdout", f"output of job {n}\n" * 5)
        journal.commit()
    journal.record_dag("d", [f"job-{n}" for n in range(1, jobs, 2)])
    for n in range(keys):
        journal.record_store(f"key-{n}", f"value-{n:04d}")
        journal.commit()
    journal.record_set_add("members", "alpha")
    journal.commit()
    return journal


def files_left_by_kill9(live_folder, killed_folder):
    """A copy of what kill -9 of a live journal's master leaves on disk: titan.db, its WAL and the
    commit counter, as they are now; the folder holding them."""
    killed_folder.mkdir()
    for suffix in ("", "-wal", COUNTER_SUFFIX):
        shutil.copy(live_folder / (FILE_NAME + suffix), killed_folder / (FILE_NAME + suffix))
    return killed_folder


def snapshot(recovered) -> tuple:
    runs = sorted((r.job_id, r.seq, r.dag, r.spec, r.state, r.attempt, r.worker) for r in recovered.runs)
    return runs, recovered.dags, recovered.logs, recovered.store, recovered.replies


def test_a_value_changed_on_disk_is_refused_naming_file_table_and_row(tmp_path):
    filled_journal(tmp_path).close()
    path = tmp_path / FILE_NAME
    data = path.read_bytes()
    assert data.count(b"value-0007") == 1
    path.write_bytes(data.replace(b"value-0007", b"value-9007"))   # still valid msgpack, still a string
    with pytest.raises(JournalCorrupt) as refused:
        SqliteJournal(str(tmp_path)).load()
    message = str(refused.value)
    assert str(path) in message and "table store" in message and "'key-7'" in message and "checksum" in message


def test_a_wal_that_lost_acknowledged_commits_is_refused(tmp_path):
    """The master killed (its WAL not yet folded into titan.db), then a frame of the WAL damaged:
    SQLite would replay the WAL up to that frame and silently drop every commit after it."""
    live = filled_journal(tmp_path / "live")
    killed = files_left_by_kill9(tmp_path / "live", tmp_path / "killed")
    live.close()
    wal = killed / (FILE_NAME + "-wal")
    frames = (wal.stat().st_size - WAL_HEADER) // (WAL_FRAME_HEADER + PAGE)
    assert frames > 20, "the test needs its commits in the WAL"
    damaged = bytearray(wal.read_bytes())
    damaged[WAL_HEADER + (frames // 2) * (WAL_FRAME_HEADER + PAGE) + WAL_FRAME_HEADER + 200] ^= 0xFF
    wal.write_bytes(bytes(damaged))
    with pytest.raises(JournalCorrupt, match=r"WAL lost the last \d+") as refused:
        SqliteJournal(str(killed)).load()
    assert str(killed / FILE_NAME) in str(refused.value) and COUNTER_SUFFIX in str(refused.value)


def test_a_damaged_commit_counter_is_refused_naming_it(tmp_path):
    filled_journal(tmp_path).close()
    counter = tmp_path / (FILE_NAME + COUNTER_SUFFIX)
    counter.write_bytes(b"\x01" + counter.read_bytes()[1:])
    with pytest.raises(JournalCorrupt, match=f"{COUNTER_SUFFIX} fails its checksum"):
        SqliteJournal(str(tmp_path))


def test_an_undamaged_journal_killed_mid_run_loads_everything(tmp_path):
    live = filled_journal(tmp_path / "live")
    expected = snapshot(live.load())
    killed = files_left_by_kill9(tmp_path / "live", tmp_path / "killed")
    live.close()
    assert snapshot(SqliteJournal(str(killed)).load()) == expected


def test_random_damage_is_refused_or_changes_nothing(tmp_path):
    """Bytes flipped anywhere in a stopped master's journal: each time, either a JournalCorrupt that
    names the file, or exactly what was written (the damage hit unused space). Never another exception,
    never a wrong value."""
    filled_journal(tmp_path / "good").close()
    expected = snapshot(SqliteJournal(str(tmp_path / "good")).load())
    good = (tmp_path / "good" / FILE_NAME).read_bytes()
    outcomes = {"refused": 0, "unchanged": 0}
    for seed in range(FUZZ_SEEDS):
        rng = random.Random(seed)
        damaged = bytearray(good)
        for _ in range(rng.randint(1, 4)):
            damaged[rng.randrange(len(damaged))] ^= 1 << rng.randrange(8)
        folder = tmp_path / f"seed-{seed}"
        folder.mkdir()
        (folder / FILE_NAME).write_bytes(bytes(damaged))
        shutil.copy(tmp_path / "good" / (FILE_NAME + COUNTER_SUFFIX), folder / (FILE_NAME + COUNTER_SUFFIX))
        try:
            journal = SqliteJournal(str(folder))
            loaded = snapshot(journal.load())
            journal.close()
        except JournalCorrupt as exc:
            assert str(folder / FILE_NAME) in str(exc), (seed, str(exc))
            outcomes["refused"] += 1
            continue
        assert loaded == expected, f"seed {seed}: the damaged journal loaded different contents"
        outcomes["unchanged"] += 1
    assert outcomes["refused"] > 0, outcomes


def test_a_journal_moved_away_leaves_no_counter_that_refuses_the_new_one(tmp_path):
    """The refusal messages say: move the journal away to start empty. Its counter must not follow."""
    filled_journal(tmp_path).close()
    os.rename(tmp_path / FILE_NAME, tmp_path / "titan.db.damaged")
    fresh = SqliteJournal(str(tmp_path))
    assert fresh.load().store == {}
    fresh.record_store("k", "v")
    fresh.commit()
    fresh.close()
    assert SqliteJournal(str(tmp_path)).load().store == {"k": "v"}
