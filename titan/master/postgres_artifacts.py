"""Artifacts and project archives kept in the PostgreSQL journal, so a standby on another machine has
them too: ArtifactStore (artifacts.py) with its blobs and names in two tables. Uploads still arriving
are files in a temp folder, as before (a client starts an unfinished upload again after a takeover).

Each write is its own fenced transaction (the journal's), so a deposed master cannot write here either;
one that cannot be written is refused with JournalUnavailable, as a commit would be."""

from __future__ import annotations

from typing import Iterable, Optional, Tuple

from titan.core.errors import JournalUnavailable
from titan.master import postgres_sql as sql
from titan.master.artifacts import ArtifactStore
from titan.master.journal import JournalWriteError
from titan.master.postgres_journal import PostgresJournal, encode
from titan.master.postgres_connect import psycopg


class PostgresArtifactStore(ArtifactStore):
    def __init__(self, journal: PostgresJournal):
        self.journal = journal    # first: the store lists its blobs and names as it starts
        self._sizes: dict = {}    # sha256 -> size of the blobs known to be stored (they never change)
        super().__init__(None)   # a temp folder, for uploads in progress only

    def _stored_blobs(self) -> Iterable[str]:
        return self._read(sql.ALL_BLOBS, ())[0] or []

    def _stored_entries(self) -> Iterable[bytes]:
        return [bytes(entry) for entry in self._read(sql.ALL_NAME_ENTRIES, ())[0] or []]

    def _remove_blobs(self, sha256s: list) -> None:
        self._write(sql.DELETE_BLOBS, (sha256s,), what="the artifact blobs were not removed")
        for sha256 in sha256s:
            self._sizes.pop(sha256, None)

    def _blob_size_or_none(self, sha256: str) -> Optional[int]:
        if sha256 not in self._sizes:
            row = self._read(sql.HAS_BLOB, (sha256,))
            if row is None:
                return None
            self._sizes[sha256] = row[0]
        return self._sizes[sha256]

    def _store_blob(self, upload_path: str, sha256: str) -> None:
        with open(upload_path, "rb") as handle:
            data = handle.read()
        self._write(sql.INSERT_BLOB, (sha256, data))
        self._sizes[sha256] = len(data)

    def _blob_size(self, sha256: str) -> int:
        return self._blob_size_or_none(sha256) or 0

    def _read_blob(self, sha256: str, offset: int, limit: int) -> Tuple[bytes, int]:
        chunk, size = self._read(sql.READ_BLOB, (offset + 1, limit, sha256))   # SQL counts from 1
        return bytes(chunk), size

    def _write_entry(self, name: str, entry: bytes) -> None:
        self._write(sql.UPSERT_NAME, (encode(name), entry))

    def _read_entry(self, name: str) -> Optional[bytes]:
        row = self._read(sql.READ_NAME, (encode(name),))
        return None if row is None else bytes(row[0])

    def _write(self, statement: str, params: tuple, what: str = "the artifact was not kept") -> None:
        try:
            with self.journal.transaction() as db:
                db.execute(statement, params)
        except JournalWriteError as exc:
            raise JournalUnavailable(f"{exc}; {what}: retry once the master can write its journal again") from None

    def _read(self, statement: str, params: tuple):
        try:
            return self.journal.read_one(statement, params)
        except psycopg.Error as exc:
            raise JournalUnavailable(f"journal {self.journal.path} cannot be read ({exc}); retry") from None
