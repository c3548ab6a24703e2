"""The journals on their own: what is written comes back, scripts are kept once, old rows still load.

Tests taking `journal_at` (tests/unit/journals.py) run on both backends (SQLite in a temp dir, PostgreSQL on
a real server, skipped without one); the rest are about SQLite's own file and schema upgrades."""

from __future__ import annotations

import hashlib
import os
import sqlite3
from typing import Optional

import msgpack
import pytest

from titan.core.jobs import JobRun, JobSpec, JobState
from titan.master.journal import JournalCorrupt
from titan.master.journal_check import CHECKED_TABLES, WITHOUT_ROWID_KEYS, row_crc
from titan.master.sqlite_journal import SCHEMA_VERSION, SqliteJournal
from tests.unit.journals import count_rows, journal_at  # noqa: F401  (journal_at: a fixture)


def run(job_id: str, seq: int, script: bytes = b"print('ok')\n", **fields) -> JobRun:
    return JobRun(spec=JobSpec(job_id=job_id, filename=f"{job_id}.py", script=script, **fields), dag="d", seq=seq)


def record(journal: SqliteJournal, new_run: JobRun, replaced_seq: Optional[int] = None) -> None:
    journal.record_submission(new_run, replaced_seq, hashlib.sha256(new_run.spec.script).hexdigest())


def test_runs_come_back_as_they_were_recorded(journal_at):
    journal = journal_at()
    runs = [run("a", 1, priority=7, requirement="GPU", args="--x 1", timeout=2.5),
            run("b", 2, parents=("a",), retries=3), run("c", 3, script=b"\x00\xffother")]
    runs[0].state, runs[0].attempt, runs[0].worker = JobState.RUNNING, 1, "w1"
    for each in runs:
        record(journal, each)
    journal.commit()
    journal.close()
    loaded = {r.job_id: r for r in journal_at().load().runs}
    assert {job_id: r.spec for job_id, r in loaded.items()} == {r.job_id: r.spec for r in runs}
    assert (loaded["a"].state, loaded["a"].attempt, loaded["a"].worker) == (JobState.RUNNING, 1, "w1")


def test_a_script_shared_by_many_jobs_is_stored_once(journal_at):
    journal = journal_at()
    shared = b"print('shared')\n"
    for seq in range(1, 51):
        record(journal, run(f"j{seq}", seq, script=shared))
    journal.commit()
    record(journal, run("late", 51, script=shared))
    journal.commit()
    assert count_rows(journal, "scripts") == 1
    journal.close()
    assert {r.spec.script for r in journal_at().load().runs} == {shared}


def test_specs_written_with_the_script_inline_still_load(tmp_path):
    """Journals from before scripts were kept by hash hold each script in its spec."""
    SqliteJournal(str(tmp_path)).close()
    db = sqlite3.connect(str(tmp_path / "titan.db"))
    spec = {"job_id": "old", "filename": "old.py", "script": b"print('old')\n", "parents": [], "priority": 4}
    db.execute("INSERT INTO job_specs (seq, job_id, dag, spec) VALUES (1, 'old', NULL, ?)",
               (msgpack.packb(spec, use_bin_type=True),))
    db.execute("INSERT INTO job_states (job_id, seq, state, attempt, failures) VALUES ('old', 1, 'QUEUED', 0, 0)")
    seal(db)
    db.commit()
    db.close()
    (loaded,) = SqliteJournal(str(tmp_path)).load().runs
    assert loaded.spec == JobSpec(job_id="old", filename="old.py", script=b"print('old')\n", priority=4)
    assert loaded.state == JobState.QUEUED


def test_a_new_run_of_an_id_replaces_the_old_runs_spec_and_logs(journal_at):
    journal = journal_at()
    record(journal, run("j", 1, script=b"first"))
    journal.record_log("j", 1, 1, "stdout", "from the first run\n")
    journal.commit()
    record(journal, run("j", 2, script=b"second"), replaced_seq=1)
    journal.commit()
    journal.close()
    recovered = journal_at().load()
    assert [(r.seq, r.spec.script) for r in recovered.runs] == [(2, b"second")]
    assert recovered.logs == []


def unfolded(journal) -> list:
    """The ids of the jobs whose state changes wait to be folded into job_states, oldest first."""
    if isinstance(journal, SqliteJournal):
        batches = journal.db.execute("SELECT states FROM job_transitions ORDER BY id").fetchall()
    else:
        batches = journal._connection().execute("SELECT states FROM titan_job_transitions ORDER BY id").fetchall()
    return [row[0] for (packed,) in batches for row in msgpack.unpackb(packed)]


def states(journal: SqliteJournal) -> dict:
    return {r.job_id: (r.state, r.attempt, r.worker) for r in journal.load().runs}


def advance(journal: SqliteJournal, each: JobRun, state: JobState, attempt: int, worker: str = None) -> None:
    each.state, each.attempt, each.worker = state, attempt, worker
    journal.record_state(each)
    journal.commit()


def test_the_latest_state_comes_back_whether_or_not_it_was_compacted(journal_at):
    journal = journal_at()
    a, b = run("a", 1), run("b", 2)
    for each in (a, b):
        record(journal, each)
    journal.commit()
    advance(journal, a, JobState.RUNNING, 1, "w1")
    advance(journal, a, JobState.QUEUED, 1)
    advance(journal, b, JobState.RUNNING, 1, "w2")
    assert journal.compact(batch=2)          # folds a's two changes, leaves b's
    advance(journal, a, JobState.RUNNING, 2, "w2")
    assert unfolded(journal) == ["b", "a"]
    journal.close()
    expected = {"a": (JobState.RUNNING, 2, "w2"), "b": (JobState.RUNNING, 1, "w2")}
    reopened = journal_at()
    assert states(reopened) == expected
    assert unfolded(reopened) == []   # loading folded them all
    assert states(reopened) == expected


def test_a_run_never_dispatched_is_journaled_by_its_spec_alone_and_loads_pending(journal_at):
    journal = journal_at()
    queued, requeued = run("queued", 1), run("requeued", 2)
    queued.state = JobState.QUEUED
    requeued.state, requeued.attempt = JobState.QUEUED, 1   # dispatched, its worker lost, in the same turn
    for each in (queued, requeued):
        record(journal, each)
    journal.commit()
    assert unfolded(journal) == ["requeued"]
    journal.close()
    assert states(journal_at()) == {"queued": (JobState.PENDING, 0, None),
                                             "requeued": (JobState.QUEUED, 1, None)}


def test_a_run_replaced_within_one_commit_leaves_only_the_new_run(journal_at):
    journal = journal_at()
    first, second = run("j", 1, script=b"first"), run("j", 2, script=b"second")
    record(journal, first)
    first.state = JobState.CANCELLED
    journal.record_state(first)
    record(journal, second, replaced_seq=1)
    journal.commit()
    journal.close()
    assert [(r.seq, r.spec.script, r.state) for r in journal_at().load().runs] == [
        (2, b"second", JobState.PENDING)]


def test_a_master_that_is_never_idle_still_folds_its_backlog(journal_at, monkeypatch):
    for module in ("sqlite_journal", "postgres_journal"):
        monkeypatch.setattr(f"titan.master.{module}.FORCED_COMPACT_AT", 10)
    for module in ("sqlite_journal", "postgres_journal"):
        monkeypatch.setattr(f"titan.master.{module}.FORCED_COMPACT_BATCH", 4)
    journal = journal_at()
    each = run("a", 1)
    record(journal, each)
    journal.commit()
    for attempt in range(1, 31):
        advance(journal, each, JobState.RUNNING, attempt, "w1")
    assert len(unfolded(journal)) <= 10 + 1
    journal.close()
    assert states(journal_at()) == {"a": (JobState.RUNNING, 30, "w1")}


VERSION_1_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE job_specs (seq INTEGER PRIMARY KEY, job_id TEXT NOT NULL, dag TEXT, spec BLOB NOT NULL);
CREATE INDEX job_specs_by_job ON job_specs (job_id);
CREATE TABLE job_states (
    job_id TEXT PRIMARY KEY, seq INTEGER NOT NULL, state TEXT NOT NULL, attempt INTEGER NOT NULL,
    failures INTEGER NOT NULL, worker_id TEXT, worker TEXT, last_worker_id TEXT, reason TEXT, exit_code INTEGER);
CREATE TABLE store (key TEXT PRIMARY KEY, kind TEXT NOT NULL, value BLOB NOT NULL);
CREATE TABLE replies (id INTEGER PRIMARY KEY AUTOINCREMENT, channel TEXT NOT NULL, rid TEXT NOT NULL,
    reply BLOB NOT NULL, UNIQUE (channel, rid));
INSERT INTO meta VALUES ('schema_version', '1');
"""


def test_a_version_1_journal_is_upgraded_and_keeps_its_jobs_store_and_replies(tmp_path):
    db = sqlite3.connect(str(tmp_path / "titan.db"))
    db.executescript(VERSION_1_SCHEMA)
    spec = {"job_id": "old", "filename": "old.py", "script": b"print('old')\n"}
    db.execute("INSERT INTO job_specs VALUES (1, 'old', NULL, ?)", (msgpack.packb(spec, use_bin_type=True),))
    db.execute("INSERT INTO job_states VALUES ('old', 1, 'COMPLETED', 1, 0, NULL, 'w1', NULL, NULL, 0)")
    db.execute("INSERT INTO store (key, kind, value) VALUES ('k', 'string', ?)", (msgpack.packb("v"),))
    db.execute("INSERT INTO replies (channel, rid, reply) VALUES ('client', 'r1', x'01')")
    db.commit()
    db.close()
    journal = SqliteJournal(str(tmp_path))
    recovered = journal.load()
    assert [(r.job_id, r.state, r.attempt, r.worker) for r in recovered.runs] == [("old", JobState.COMPLETED, 1, "w1")]
    assert recovered.store == {"k": "v"} and recovered.replies == {"client": [("r1", b"\x01")]}
    schema = dict(journal.db.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table'"))
    assert "WITHOUT ROWID" in schema["store"] and "UNIQUE" not in schema["replies"]
    assert "job_specs_by_job" not in {name for (name,) in journal.db.execute("SELECT name FROM sqlite_master")}
    assert journal.db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == (str(SCHEMA_VERSION),)
    assert "deployed_scripts" in schema and recovered.deployed_scripts == []


def test_each_channel_keeps_its_own_latest_replies(journal_at, monkeypatch):
    monkeypatch.setattr("titan.master.journal_buffer.REPLIES_KEPT", 20)
    journal = journal_at()
    for n in range(5):
        journal.record_reply("client", f"c{n}", b"submitted")
    journal.commit()
    for n in range(50):   # a burst of store writes must not push the client's replies out
        journal.record_reply("store", f"s{n}", b"put")
        journal.commit()
    for n in range(5, 7):
        journal.record_reply("client", f"c{n}", b"submitted")
        journal.commit()
    journal.close()
    replies = journal_at().load().replies
    assert [rid for rid, _ in replies["client"]] == [f"c{n}" for n in range(7)]
    assert [rid for rid, _ in replies["store"]] == [f"s{n}" for n in range(30, 50)]


def test_a_journal_from_a_newer_titan_is_refused(tmp_path):
    SqliteJournal(str(tmp_path)).close()
    db = sqlite3.connect(str(tmp_path / "titan.db"))
    db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),))
    db.commit()
    db.close()
    with pytest.raises(JournalCorrupt, match=f"schema version {SCHEMA_VERSION + 1}, this Titan reads version {SCHEMA_VERSION}"):
        SqliteJournal(str(tmp_path))


def seal(db: sqlite3.Connection) -> None:
    """Checksums for the rows a test wrote by hand (NULL crc), as the journal would have given them."""
    for table, columns in CHECKED_TABLES.items():
        keys = WITHOUT_ROWID_KEYS.get(table, ("rowid",))
        rows = db.execute(f"SELECT {', '.join(keys + columns)} FROM {table} WHERE crc IS NULL").fetchall()
        db.executemany(f"UPDATE {table} SET crc = ? WHERE {' AND '.join(f'{k} = ?' for k in keys)}",
                       [(row_crc(row[len(keys):]), *row[:len(keys)]) for row in rows])


def _poisoned(tmp_path, sql: str, *params) -> None:
    """A journal with one job, then one row written behind its back, as an older Titan or damage left it."""
    journal = SqliteJournal(str(tmp_path))
    record(journal, run("good", 1))
    journal.commit()
    journal.close()
    db = sqlite3.connect(str(tmp_path / "titan.db"))
    db.execute(sql, params)
    seal(db)   # as a checksumming Titan wrote it: the row is well kept, its value is what is wrong
    db.commit()
    db.close()


def test_a_state_change_too_big_for_sqlite_refuses_the_journal_naming_its_row(tmp_path):
    """Older masters stored a worker's exit code of 2**63; folding it raised OverflowError at every start."""
    state = ["good", 1, "FAILED", 1, 1, None, "w", "w", None, 2 ** 63]
    _poisoned(tmp_path, "INSERT INTO job_transitions (id, count, states) VALUES (7, 1, ?)",
              msgpack.packb([state], use_bin_type=True))
    with pytest.raises(JournalCorrupt, match=r"row 7 of table job_transitions .*OverflowError") as refused:
        SqliteJournal(str(tmp_path)).load()
    assert str(tmp_path / "titan.db") in str(refused.value)


@pytest.mark.parametrize("table, sql, blob, named", [
    ("job_specs", "INSERT INTO job_specs (seq, job_id, dag, spec) VALUES (5, 'bad', NULL, ?)", b"\xc1", "row 5 of table job_specs"),
    ("job_specs", "INSERT INTO job_specs (seq, job_id, dag, spec) VALUES (6, 'odd', NULL, ?)",
     msgpack.packb({"job_id": "odd", "filename": "o.py", "script": b"", "colour": 1}), "row 6 of table job_specs"),
    ("job_specs", "INSERT INTO job_specs (seq, job_id, dag, spec) VALUES (8, 'nan', NULL, ?)",
     msgpack.packb({"job_id": "nan", "filename": "n.py", "script": b"", "max_wait_seconds": float("nan")}),
     "row 8 of table job_specs .*max_wait_seconds is nan"),
    ("store", "INSERT INTO store (key, kind, value) VALUES ('k', 'set', ?)", b"\x92\x01", "row 'k' of table store"),
    ("dags", "INSERT INTO dags (name, job_ids) VALUES ('d', ?)", b"\xdd\xff\xff\xff\xff", "row 'd' of table dags"),
    ("job_transitions", "INSERT INTO job_transitions (id, count, states) VALUES (3, 1, ?)", b"\xc1",
     "row 3 of table job_transitions"),
])
def test_one_unreadable_row_refuses_the_journal_naming_it(tmp_path, table, sql, blob, named):
    _poisoned(tmp_path, sql, blob)
    with pytest.raises(JournalCorrupt, match=named):
        SqliteJournal(str(tmp_path)).load()


def test_deployed_scripts_come_back_and_a_later_deploy_replaces(journal_at):
    journal = journal_at()
    journal.record_deployed_script("train.py", b"print('v1')\n", 100.0)
    journal.commit()
    journal.record_deployed_script("train.py", b"print('v2')\n", 200.0)
    journal.record_deployed_script("eval.py", b"print('e')\n", 150.0)
    journal.commit()
    journal.close()
    deployed = {entry.name: entry for entry in journal_at().load().deployed_scripts}
    assert {name: (e.script, e.deployed_at) for name, e in deployed.items()} == {
        "train.py": (b"print('v2')\n", 200.0), "eval.py": (b"print('e')\n", 150.0)}


def test_a_version_2_journal_is_upgraded_in_place_and_keeps_its_jobs(tmp_path):
    """Version 2 had no deployed_scripts table. Made here as such a file is: the table absent, version 2."""
    journal = SqliteJournal(str(tmp_path))
    record(journal, run("old", 1, priority=4))
    journal.record_store("k", "v")
    journal.commit()
    journal.close()
    db = sqlite3.connect(str(tmp_path / "titan.db"))
    db.execute("DROP TABLE deployed_scripts")
    db.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")
    db.commit()
    db.close()
    upgraded = SqliteJournal(str(tmp_path))
    (version,) = upgraded.db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    recovered = upgraded.load()
    assert version == str(SCHEMA_VERSION) and [r.job_id for r in recovered.runs] == ["old"] and recovered.store == {"k": "v"}
    assert recovered.deployed_scripts == []
    upgraded.record_deployed_script("new.py", b"print('new')\n", 1.0)
    upgraded.commit()
    upgraded.close()
    assert [e.name for e in SqliteJournal(str(tmp_path)).load().deployed_scripts] == ["new.py"]



def test_set_members_are_journaled_one_by_one_and_come_back(tmp_path):
    journal = SqliteJournal(str(tmp_path))
    for n in range(100):
        journal.record_set_add("big", f"m{n}")
        journal.commit()
    journal.record_set_add("gone", "x")
    journal.record_store("gone", None)                # deleted, then made again in the same commit
    journal.record_set_add("gone", "y")
    journal.record_set_add("whole", "late")
    journal.record_store("whole", {"a", "b"})         # a whole value replaces what was added before it
    journal.commit()
    (rows,) = journal.db.execute("SELECT COUNT(*) FROM store_members WHERE key = 'big'").fetchone()
    assert rows == 100
    journal.record_store("big", None)
    journal.commit()
    journal.close()
    store = SqliteJournal(str(tmp_path)).load().store
    assert store == {"gone": {"y"}, "whole": {"a", "b"}}


def test_a_version_3_set_keeps_its_members_and_takes_new_ones(tmp_path):
    """Version 3 kept a set's members packed in its store row; an add after the upgrade joins them."""
    SqliteJournal(str(tmp_path)).close()
    db = sqlite3.connect(str(tmp_path / "titan.db"))
    db.execute("DROP TABLE store_members")
    for table in CHECKED_TABLES:   # version 3 had no checksums
        if table != "store_members":
            db.execute(f"ALTER TABLE {table} DROP COLUMN crc")
    db.execute("INSERT INTO store VALUES ('s', 'set', ?)", (msgpack.packb(["a", "b"]),))
    db.execute("UPDATE meta SET value = '3' WHERE key = 'schema_version'")
    db.commit()
    db.close()
    journal = SqliteJournal(str(tmp_path))
    assert journal.load().store == {"s": {"a", "b"}}
    journal.record_set_add("s", "c")
    journal.commit()
    journal.close()
    assert SqliteJournal(str(tmp_path)).load().store == {"s": {"a", "b", "c"}}


def test_set_members_and_capped_output_on_either_backend(journal_at):
    journal = journal_at(max_log_bytes=2_000)
    record(journal, run("chatty", 1))
    for n in range(30):
        journal.record_set_add("seen", f"m{n}")
        journal.record_log("chatty", 1, 1, "stdout", f"{n:03d}" + "x" * 96 + "\n")   # 100 bytes a row
        journal.commit()
    journal.record_set_add("whole", "late")
    journal.record_store("whole", {"a", "b"})   # a whole value replaces what was added before it
    journal.commit()
    assert count_rows(journal, "store_members") == 32
    assert 20 <= count_rows(journal, "logs") <= 21   # the newest 2,000 bytes, in whole rows
    journal.close()
    recovered = journal_at(max_log_bytes=2_000).load()
    assert recovered.store == {"seen": {f"m{n}" for n in range(30)}, "whole": {"a", "b"}}
    output = "".join(text for _, _, _, text in recovered.logs)
    assert output.endswith("029" + "x" * 96 + "\n") and not output.startswith("000")


def test_size_bytes_counts_what_the_journal_holds_and_postgres_reads_it_now_and_then(journal_at, monkeypatch):
    monkeypatch.setattr("titan.defaults.POSTGRES_SIZE_REFRESH_S", 0.0)
    journal = journal_at()
    empty = journal.size_bytes
    record(journal, run("big", 1, script=os.urandom(1_000_000)))   # random: PostgreSQL cannot compress it
    journal.commit()
    journal.renew()   # a shared journal reads its size as it renews its lease (SQLite: nothing to renew)
    grown = journal.size_bytes
    assert grown >= empty + 1_000_000
    if journal.shared:   # a sum over its tables is a query: stats() gets the figure of the last read, from memory
        record(journal, run("bigger", 2, script=os.urandom(1_000_000)))
        journal.commit()
        assert journal.size_bytes == grown   # not read again before a renewal
        monkeypatch.setattr("titan.defaults.POSTGRES_SIZE_REFRESH_S", 3600.0)
        journal.renew()
        assert journal.size_bytes == grown   # nor at one before POSTGRES_SIZE_REFRESH_S has passed
    journal.close()
