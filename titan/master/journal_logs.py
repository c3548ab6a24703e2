"""Which journaled log rows a job's capped output no longer needs (used by titan/master/sqlite_journal.py).

The master keeps the last --max-log-bytes of each job's output in memory (titan/core/logs.py); the
journal keeps the same, in whole rows: the newest rows of the job's current run that hold at least that
much, so whatever the master shows after a restart is still there, and a chatty job cannot fill the disk.
Row ids are given here, in arrival order, so the oldest rows can be deleted by id.
"""

from __future__ import annotations

from collections import deque
from typing import Deque, Dict, Iterable, List, Tuple


class _RunRows:
    __slots__ = ("seq", "rows", "size")

    def __init__(self, seq: int):
        self.seq = seq
        self.rows: Deque[Tuple[int, int]] = deque()   # (row id, bytes of text), oldest first
        self.size = 0


class LogRows:
    """Every journaled (or pending) log row's id and size, per job; what to delete to stay at the cap."""

    def __init__(self, max_bytes: int, next_id: int = 1):
        self.max_bytes = max_bytes
        self.next_id = next_id
        self._jobs: Dict[str, _RunRows] = {}
        self._touched: set = set()   # jobs with rows added since the last excess()

    @classmethod
    def of_rows(cls, max_bytes: int, rows: Iterable[Tuple[int, str, int, int]]) -> "LogRows":
        """From the journal's rows: (id, job id, seq, bytes), oldest first."""
        known = cls(max_bytes)
        for row_id, job_id, seq, size in rows:
            known._add(job_id, seq, row_id, size)
            known.next_id = row_id + 1
        return known

    def new_row(self, job_id: str, seq: int, text: str) -> int:
        """The id of a new row of the job's run `seq` (a later run forgets the earlier one's rows)."""
        row_id, self.next_id = self.next_id, self.next_id + 1
        self._add(job_id, seq, row_id, len(text.encode("utf-8", "surrogatepass")))
        return row_id

    def _add(self, job_id: str, seq: int, row_id: int, size: int) -> None:
        run = self._jobs.get(job_id)
        if run is None or run.seq != seq:
            run = self._jobs[job_id] = _RunRows(seq)
        run.rows.append((row_id, size))
        run.size += size
        self._touched.add(job_id)

    def forget(self, job_id: str) -> None:
        """The job's run was replaced: the journal deletes all its rows by itself."""
        self._jobs.pop(job_id, None)

    @property
    def grew(self) -> bool:
        """Rows were added since the last excess() (it may have rows to give)."""
        return bool(self._touched)

    def excess(self) -> List[int]:
        """The ids of the oldest rows of the jobs that grew, whose output the newer rows still cover
        past the cap. They are forgotten here at once: the journal keeps them until a commit deleted them."""
        doomed: List[int] = []
        for job_id in self._touched:
            run = self._jobs.get(job_id)
            while run is not None and run.rows and run.size - run.rows[0][1] >= self.max_bytes:
                row_id, size = run.rows.popleft()
                run.size -= size
                doomed.append(row_id)
        self._touched.clear()
        return doomed
