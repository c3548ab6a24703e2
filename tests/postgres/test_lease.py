"""The lease and its fence on a real PostgreSQL: one leader at a time, epochs only grow, and a journal
whose master lost the lease can never write again."""

import hashlib

import pytest

from titan.core.jobs import JobRun, JobSpec, JobState
from titan.master.journal import Deposed
from titan.master.lease import Lease, read_leadership
from titan.master.postgres_journal import PostgresJournal


def submission(journal, job_id: str, seq: int) -> None:
    run = JobRun(spec=JobSpec(job_id=job_id, filename=f"{job_id}.py", script=b"pass"), dag=None, seq=seq)
    journal.record_submission(run, None, hashlib.sha256(b"pass").hexdigest())


def test_a_live_lease_is_not_taken_and_an_expired_one_is_with_a_higher_epoch(pg_url):
    first, second = Lease(pg_url, "m1", "h1:9090", timeout=60), Lease(pg_url, "m2", "h2:9090", timeout=60)
    assert first.try_take() == 1
    assert second.try_take() is None                  # renewed just now: m1 leads
    info = read_leadership(second._connection())
    assert (info["leader"], info["epoch"], [s["name"] for s in info["standbys"]]) == ("m1", 1, ["m2"])
    second.timeout = 0.0                              # as if m1 had been silent longer than the timeout
    assert second.try_take() == 2
    assert read_leadership(second._connection())["standbys"] == []   # a leader is no standby
    first.close(), second.close()


def test_a_deposed_journal_cannot_commit_and_what_it_recorded_is_not_written(pg_url):
    old_lease = Lease(pg_url, "old", "h1:9090")
    old = PostgresJournal(pg_url, old_lease.try_take())
    submission(old, "before", 1)
    old.commit()
    new_lease = Lease(pg_url, "new", "h2:9090", timeout=0.0)
    new = PostgresJournal(pg_url, new_lease.try_take())
    submission(old, "after", 2)
    with pytest.raises(Deposed, match="epoch 1 is over"):
        old.commit()
    with pytest.raises(Deposed):
        old.renew()
    assert [run.job_id for run in new.load().runs] == ["before"]
    for each in (old, new, old_lease, new_lease):
        each.close()


def test_a_deposed_journal_cannot_commit_a_turn_written_as_one_statement_either(pg_url):
    """Such a turn is written in one statement of its own (not the pipelined transaction): fenced all the same."""
    old = PostgresJournal(pg_url, Lease(pg_url, "old", "h1:9090").try_take())
    submission(old, "job", 1)
    old.commit()
    (run,) = old.load().runs
    new = PostgresJournal(pg_url, Lease(pg_url, "new", "h2:9090", timeout=0.0).try_take())
    run.state, run.attempt, run.worker = JobState.RUNNING, 1, "w1"
    old.record_state(run)
    old.record_reply("client", "c1", b"dispatched")
    assert old._fits_one_statement()   # the one-statement path is the one tried
    with pytest.raises(Deposed, match="epoch 1 is over"):
        old.commit()
    recovered = new.load()
    assert [(r.job_id, r.state, r.attempt) for r in recovered.runs] == [("job", JobState.PENDING, 0)]
    assert recovered.replies == {}
    run.state = JobState.COMPLETED
    new.record_state(run)
    new.record_reply("client", "c2", b"completed")
    assert new._fits_one_statement()
    new.commit()
    recovered = new.load()
    assert [(r.job_id, r.state) for r in recovered.runs] == [("job", JobState.COMPLETED)]
    assert [rid for rid, _ in recovered.replies["client"]] == ["c2"]
    old.close(), new.close()


def test_a_takeover_waits_for_the_leaders_commit_in_progress(pg_url):
    """The fence holds the lease row until the commit: a standby's takeover waits, then finds it renewed."""
    leader = PostgresJournal(pg_url, Lease(pg_url, "l", "h1:9090").try_take())
    standby = Lease(pg_url, "s", "h2:9090", timeout=0.5)
    with leader.transaction():
        standby._connection().execute("SET lock_timeout = '300ms'")
        with pytest.raises(Exception, match="lock timeout"):
            standby.try_take()
    leader.renew()
    standby.close()
    leader.close()
