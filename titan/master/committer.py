"""The master's commits, and riding out a journal that cannot be written (a full disk, an I/O error).

While a commit fails, the master says nothing that depends on it: the replies, dispatches, acks and
events of the turns since the last good commit wait, everything recorded stays pending in the journal,
and the next try writes it all. Changes are refused meanwhile (JournalUnavailable) and reads answered.
"""

from __future__ import annotations

import logging
from typing import Optional

from titan import defaults
from titan.master.journal import Journal, JournalWriteError

log = logging.getLogger("titan.master")


class Committer:
    def __init__(self, journal: Optional[Journal], retry_every: float = defaults.JOURNAL_RETRY_S):
        self.journal = journal
        self.retry_every = retry_every
        self.failure: Optional[str] = None   # why the last commit failed; None while commits succeed
        self._next_try = 0.0
        self._held_log_chars = 0               # job output recorded since the last good commit
        self.last_written = float("inf")       # monotonic time of the last commit that succeeded; inf: none yet

    def hold(self, log_chars: int) -> bool:
        """May this much job output wait for the next commit? Always while commits succeed; during an
        outage up to JOURNAL_HELD_LOG_CHARS in all (past that, output is kept in memory only)."""
        if self.failure is None:
            return True
        self._held_log_chars += log_chars
        if self._held_log_chars > defaults.JOURNAL_HELD_LOG_CHARS:
            if self._held_log_chars - log_chars <= defaults.JOURNAL_HELD_LOG_CHARS:
                log.error("the journal has held %d characters of job output since it could last be written; "
                          "further output is kept in memory only until it can", defaults.JOURNAL_HELD_LOG_CHARS)
            return False
        return True

    def commit(self, now: float) -> bool:
        """True once everything recorded is written; False while the journal cannot be written."""
        if self.journal is None:
            return True
        if self.failure is not None and now < self._next_try:
            return False
        if not self._write(self.journal.commit if self.failure is None else self._commit_again, now):
            return False
        if self.failure is not None:
            log.warning("journal %s can be written again; carrying on", self.journal.path)
            self.failure = None
        self._held_log_chars = 0
        return True

    def compact(self, batch: int, now: float) -> None:
        """Fold some state changes; a fold that cannot be written starts an outage like a commit would."""
        if self.journal is not None and self.failure is None:
            self._write(lambda: self.journal.compact(batch), now)

    def _commit_again(self) -> None:
        """After a failure: on a shared journal, reach the database even with nothing pending (the lease),
        so "can be written again" is said only once it can."""
        self.journal.renew()
        self.journal.commit()

    def renew(self, now: float) -> bool:
        """Renew this master's lease on a shared journal (a no-op on SQLite); an outage if it cannot be."""
        return self.journal is None or (self.failure is None and self._write(self.journal.renew, now))

    def _write(self, action, now: float) -> bool:
        try:
            action()
        except JournalWriteError as exc:
            if self.failure is None:
                log.error("%s; the master refuses changes and holds what it has not written until it can "
                          "write again (trying every %gs)", exc, self.retry_every)
            self.failure, self._next_try = str(exc), now + self.retry_every
            return False
        self.last_written = now
        return True
