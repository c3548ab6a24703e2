"""The artifact sweep on the PostgreSQL store: the same stories as on files (tests/unit/test_artifact_sweep.py),
with the blobs and names in titan_artifact_blobs / titan_artifact_names, and a store opened again (a new
leader) knowing which blobs are named."""

from __future__ import annotations

import psycopg

from titan.master.lease import Lease
from titan.master.postgres_artifacts import PostgresArtifactStore
from titan.master.postgres_journal import PostgresJournal
from tests.unit.test_artifact_sweep import (GRACE, pinned_content_stays_until_unpinned, put,
                                            repointed_content_ages_out, sweep)


def stored_blobs(pg_url: str) -> set:
    with psycopg.connect(pg_url) as conn:
        return {sha for (sha,) in conn.execute("SELECT sha256 FROM titan_artifact_blobs")}


def test_the_sweep_removes_unreferenced_rows_and_a_new_leader_knows_the_names(pg_url):
    lease = Lease(pg_url, "m1", "h1:9090")
    journal = PostgresJournal(pg_url, lease.try_take())
    store = PostgresArtifactStore(journal)
    try:
        repointed_content_ages_out(store)
        pinned_content_stays_until_unpinned(store)
        assert stored_blobs(pg_url) == store._held and len(stored_blobs(pg_url)) == 3
        old = put(store, "late.bin", b"late")
        current = put(store, "late.bin", b"later")
        reopened = PostgresArtifactStore(journal)
        assert reopened.stats()["blobs_kept"] == 5
        sweep(reopened, 0.0)
        assert sweep(reopened, GRACE) == 1
        assert old not in stored_blobs(pg_url) and current in stored_blobs(pg_url)
        assert stored_blobs(pg_url) == reopened._held
        reopened.close()
    finally:
        store.close()
        journal.close()
        lease.close()
