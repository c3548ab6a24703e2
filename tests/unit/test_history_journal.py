"""Job history in the journal (titan/master/history_journal.py): times, attempts, earlier runs and DAG runs
come back after a restart and forgotten runs leave every table, on both backends (`journal_at`); a SQLite
journal of before history (schema 3) is upgraded in place."""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
from pathlib import Path

import pytest

from titan.core.jobs import JobState
from titan.core.retention import Retention
from titan.core.scheduler import Scheduler
from titan.master.journal import JournalWriteError
from titan.master.sqlite_journal import SCHEMA_VERSION, SqliteJournal
from tests.unit.journals import count_rows, journal_at  # noqa: F401  (journal_at: a fixture)
from tests.unit.sim import Sim, spec

WALL = 1_700_000_000.0
V3_JOURNAL = Path(__file__).parent / "fixtures" / "journal-v3" / "titan.db"


def journal_everything(sim: Sim, journal: SqliteJournal) -> None:
    """What the master does at the end of each turn: DAG runs and state changes, then commit."""
    for dags in sim.s.history.dag_runs.values():
        for dag_run in dags:
            journal.record_dag_run(dag_run)
    journal.record_states(sim.s.take_changed_runs())
    journal.commit()


def submit(sim: Sim, journal: SqliteJournal, *specs, dag=None) -> None:
    before = {job_id: run.seq for job_id, run in sim.s.jobs.items()}
    sim.submit(*specs, dag=dag)
    for each in specs:
        run = sim.s.jobs[each.job_id]
        replaced = before.get(each.job_id)
        if replaced is not None:
            journal.record_past_run(sim.s.history.runs[replaced])
        journal.record_submission(run, replaced, hashlib.sha256(run.spec.script).hexdigest())
    if dag:
        journal.record_dag(dag, sim.s.dags[dag])


def restarted(journal_at) -> Scheduler:
    """A scheduler restored from the journal `journal_at()` opens, as a restarted master's is."""
    journal = journal_at()
    recovered = journal.load()
    journal.close()
    scheduler = Scheduler()
    scheduler.wall_offset = WALL
    scheduler.restore(recovered.runs, recovered.dags, 100.0, recovered.past_runs, recovered.dag_runs)
    scheduler.validate()
    return scheduler


def test_times_attempts_earlier_runs_and_dag_runs_survive_a_restart(journal_at):
    sim = Sim()
    sim.s.wall_offset = WALL
    journal = journal_at()
    sim.join("w1")
    submit(sim, journal, spec("a", retries=1), spec("b", parents=["a"]), dag="pipe")
    journal_everything(sim, journal)
    sim.now = 2.0
    sim.finish("a", exit_code=4)                       # attempt 1 fails
    sim.live_until(5.0)                                # the retry runs
    sim.finish("a")
    sim.now = 6.0
    sim.finish("b")
    journal_everything(sim, journal)
    journal.compact()                                   # some folded, the rest folded by load()
    sim.now = 7.0
    submit(sim, journal, spec("a"), spec("b", parents=["a"]), dag="pipe")   # run 2 of the pipeline
    journal_everything(sim, journal)
    journal.close()
    before = {j["job_id"] + j["run"]: j for j in sim.s.list_jobs()["jobs"]}

    scheduler = restarted(journal_at)
    after = {j["job_id"] + j["run"]: j for j in scheduler.list_jobs()["jobs"]}
    assert after == before and len(after) == 4
    first_a = after["apipe#1"]
    assert [a["exit_code"] for a in first_a["attempts"]] == [4, 0] and first_a["submitted_at"] == WALL
    assert [(r["run"], r["outcome"]) for r in scheduler.dag_runs("pipe")] == [("pipe#2", "RUNNING"),
                                                                             ("pipe#1", "COMPLETED")]
    assert scheduler.describe_dag("pipe")["run"] == "pipe#2"


def test_a_version_3_journal_is_upgraded_in_place_and_its_dags_get_one_run_each(tmp_path):
    """The fixture was written by the journal of before history (main at c4af6b7): a DAG 'pipe' (a
    COMPLETED, b FAILED), a lone job c RUNNING, a log and a store key, one commit left unfolded."""
    shutil.copy(V3_JOURNAL, tmp_path / "titan.db")
    scheduler = restarted(lambda: SqliteJournal(str(tmp_path)))
    db = sqlite3.connect(str(tmp_path / "titan.db"))
    assert db.execute("SELECT value FROM meta WHERE key = 'history_version'").fetchone() == ("1",)
    assert db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == (str(SCHEMA_VERSION),)
    db.close()
    assert {j: scheduler.jobs[j].state.value for j in "abc"} == {"a": "COMPLETED", "b": "FAILED", "c": "RUNNING"}
    (only,) = scheduler.dag_runs("pipe")
    assert (only["run"], only["outcome"], only["jobs"], only["submitted_at"]) == ("pipe#1", "FAILED", 2, None)
    info = scheduler.describe_job("a")
    assert info["submitted_at"] is None and info["run"] == "pipe#1" and info["ended_at"] is None
    assert info["attempts"] == [{"attempt": 1, "worker": "w1", "started_at": None, "ended_at": None, "exit_code": 0,
                                 "reason": None}]
    assert [j["job_id"] for j in scheduler.list_jobs()["jobs"]] == ["c", "b", "a"]
    journal = SqliteJournal(str(tmp_path))   # opened a second time: the upgrade is not run again
    recovered = journal.load()
    assert recovered.store == {"k": "v"} and [log[0] for log in recovered.logs] == ["a"]
    journal.close()


HISTORY_ROWS = ("job_specs", "job_states", "run_times", "past_runs", "dag_runs", "dags", "agent_runs", "logs",
                "scripts")


def rows_of_every_table(journal) -> dict:
    return {table: count_rows(journal, table) for table in HISTORY_ROWS}


@pytest.mark.parametrize("folded_before_restart", [True, False])
def test_a_forgotten_run_leaves_every_table_and_unfolded_changes_do_not_bring_it_back(journal_at,
                                                                                      folded_before_restart):
    """Run 1 of DAG 'pipe' folded, run 2's changes still waiting to be folded when the DAG is forgotten:
    folding them later in this master must not bring a state row back, nor must a restart's folding when
    this master was killed before it folded them. A job of another DAG keeps all it had."""
    sim = Sim()
    sim.s.wall_offset = WALL
    journal = journal_at()
    sim.join("w1", slots=2)
    submit(sim, journal, spec("keep", script=b"print('kept')\n"), dag="other")
    journal.record_agent_run("pipe", "agent-1")
    submit(sim, journal, spec("a"), dag="pipe")
    journal_everything(sim, journal)
    sim.now = 1.0
    sim.finish("a")
    journal.record_log("a", sim.s.jobs["a"].seq, 1, "stdout", "out\n")
    journal_everything(sim, journal)
    assert not journal.compact() or journal.backlog == 0
    submit(sim, journal, spec("a"), dag="pipe")          # run 2: run 1 becomes a past run
    journal_everything(sim, journal)
    sim.finish("a")
    journal_everything(sim, journal)                      # not folded: run 2's changes wait
    before = rows_of_every_table(journal)
    assert journal.backlog > 0 and before["past_runs"] == 1 and before["job_states"] == 2 and before["run_times"] == 1
    (forgotten,) = sim.s.forget_dag("pipe", sim.now)
    journal.record_forgotten(forgotten.runs, forgotten.dag_runs, forgotten.dags,
                             [hashlib.sha256(forgotten.runs[0].spec.script).hexdigest()])
    journal.commit()
    kept = {"job_specs": 1, "job_states": 1, "run_times": 1, "past_runs": 0, "dag_runs": 1, "dags": 1,
            "agent_runs": 0, "logs": 0, "scripts": 1}
    assert rows_of_every_table(journal) == kept and journal.forget_seconds >= 0
    if folded_before_restart:
        while journal.compact():
            pass
        assert journal.backlog == 0 and rows_of_every_table(journal) == kept
    journal.close()

    reopened = journal_at()
    recovered = reopened.load()
    assert rows_of_every_table(reopened) == kept
    (only,) = recovered.runs
    assert (only.job_id, only.state, only.started_at) == ("keep", JobState.RUNNING, WALL)
    assert recovered.past_runs == [] and [d.dag for d in recovered.dag_runs] == ["other"]
    assert set(recovered.dags) == {"other"} and recovered.agent_runs == {} and recovered.logs == []
    reopened.close()


def test_an_older_journal_is_rebuilt_for_incremental_vacuum_once(tmp_path):
    shutil.copy(V3_JOURNAL, tmp_path / "titan.db")
    db = sqlite3.connect(str(tmp_path / "titan.db"))
    assert db.execute("PRAGMA auto_vacuum").fetchone() == (0,)
    db.close()
    SqliteJournal(str(tmp_path)).close()
    db = sqlite3.connect(str(tmp_path / "titan.db"))
    assert db.execute("PRAGMA auto_vacuum").fetchone() == (2,)
    db.close()


def test_an_earlier_run_keeps_the_archive_it_ran_from_across_a_restart(tmp_path):
    sim = Sim()
    journal = SqliteJournal(str(tmp_path))
    sim.join("w1")
    pinned = "ab" * 32
    submit(sim, journal, spec("step", archive=pinned))
    sim.finish("step")
    journal_everything(sim, journal)
    submit(sim, journal, spec("step"))                 # submitted again, from no archive
    journal_everything(sim, journal)
    journal.close()
    earlier = [run for run in SqliteJournal(str(tmp_path)).load().past_runs if run.job_id == "step"]
    assert [run.spec.archive for run in earlier] == [pinned], "what pins the archive while the run is kept"


def test_replies_forgotten_with_their_runs_leave_the_journal(journal_at):
    journal = journal_at()
    journal.record_reply("client", "c/1", b"one")
    journal.record_reply("client", "c/2", b"two")
    journal.commit()
    journal.record_replies_forgotten("client", ["c/1", "c/never"])
    journal.commit()
    assert count_rows(journal, "replies") == 1
    journal.close()
    reopened = journal_at()
    assert reopened.load().replies == {"client": [("c/2", b"two")]}
    reopened.record_replies_forgotten("client", ["c/2"])   # known by request id after a restart too
    reopened.commit()
    assert count_rows(reopened, "replies") == 0
    reopened.close()


class _CommitFails:
    """A SQLite journal's connection whose next COMMIT fails, as a full disk makes it fail."""

    def __init__(self, db: sqlite3.Connection):
        self.db, self.failing = db, True

    def execute(self, statement: str, *args):
        if statement == "COMMIT" and self.failing:
            self.failing = False
            raise sqlite3.OperationalError("database or disk is full")
        return self.db.execute(statement, *args)

    def __getattr__(self, name: str):
        return getattr(self.db, name)


def test_a_fold_rolled_back_keeps_the_note_of_runs_forgotten_before_it(tmp_path):
    """A run forgotten while its state changes wait to be folded: a fold that fails to commit must not
    let go of that note, or the next fold brings the forgotten run's state row back."""
    sim = Sim()
    journal = SqliteJournal(str(tmp_path))
    sim.join("w1")
    submit(sim, journal, spec("a"))
    journal_everything(sim, journal)
    sim.finish("a")
    journal_everything(sim, journal)
    assert journal.backlog > 0
    sim.s.retention = Retention(keep_completed=0.0)
    (forgotten,) = sim._step(sim.s.forget_old, batch=10)
    journal.record_forgotten(forgotten.runs, [], [], [])
    journal.commit()
    real = journal.db
    journal.db = _CommitFails(real)
    with pytest.raises(JournalWriteError):
        journal.compact()
    journal.db = real
    while journal.compact():
        pass
    assert journal.backlog == 0
    assert count_rows(journal, "job_states") == 0 and count_rows(journal, "run_times") == 0
    journal.close()
