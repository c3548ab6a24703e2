"""The `journal_at` fixture and helpers for tests that run on both journal backends (SQLite in a temp dir,
PostgreSQL on a real server, skipped without one); test modules import them."""

from __future__ import annotations

import pytest

from titan.master.sqlite_journal import SqliteJournal


@pytest.fixture(params=["sqlite", "postgres"])
def journal_at(request, tmp_path):
    """journal_at() opens the test's journal again (as a restarted master would), on either backend."""
    if request.param == "sqlite":
        return lambda **options: SqliteJournal(str(tmp_path), **options)
    from titan.master.lease import Lease
    from titan.master.postgres_journal import PostgresJournal
    url = request.getfixturevalue("pg_url")
    lease = Lease(url, "test-master", "127.0.0.1:0")
    epoch = lease.try_take()
    lease.close()
    return lambda **options: PostgresJournal(url, epoch, **options)


def count_rows(journal, table: str) -> int:
    """Rows of the journal's `table` (named as in SQLite; PostgreSQL's have the titan_ prefix)."""
    if isinstance(journal, SqliteJournal):
        return journal.db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
    return journal.read_one(f"SELECT COUNT(*) FROM titan_{table}", ())[0]
