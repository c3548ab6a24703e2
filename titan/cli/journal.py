"""`titan journal check [--data-dir D]`: verify a master's journal offline, as a master would on start.

The journal's files are copied to a temporary folder and opened there, so the check never changes
them (an older journal would be upgraded, a WAL folded): SQLite's integrity check, every row's checksum
and decoding, and the commits held against those acknowledged (titan/master/journal_check.py). Prints
what it found; exit code 0 when the journal is sound, 1 when it is damaged or in use, 2 when there is none.

Wired into the `titan` command by titan.cli.parser (add_commands).
"""

from __future__ import annotations

import fcntl
import os
import shutil
import sqlite3
import tempfile

from titan.cli.common import CommandError
from titan.master.journal import JournalCorrupt, JournalInUse
from titan.master.journal_check import COUNTER_SUFFIX, CommitCounter
from titan.master.sqlite_journal import FILE_NAME, SqliteJournal

# SQLite's lock bytes (its os_unix.c): a master holding the journal locks this range for writing.
SQLITE_SHARED_FIRST, SQLITE_SHARED_SIZE = 0x40000002, 510
COPIED_SUFFIXES = ("", "-wal", COUNTER_SUFFIX)


def add_commands(commands) -> None:
    journal = commands.add_parser("journal", help="check a master's journal (--data-dir) offline",
                                  description="Work with the journal a master keeps in its --data-dir.")
    verbs = journal.add_subparsers(dest="journal_command", metavar="VERB")
    check = verbs.add_parser("check", help="verify the journal: integrity, checksums, lost commits",
                             description="Verify a stopped master's journal without changing it: SQLite's "
                                         "integrity, every row's checksum and contents, and that no "
                                         "acknowledged commit was lost. Exit 0 sound, 1 damaged.")
    check.add_argument("--data-dir", default=".", help="the master's --data-dir (default: this folder)")
    check.set_defaults(run=run_check)
    journal.set_defaults(run=lambda args: _usage(journal))


def _usage(parser) -> int:
    parser.print_help()
    return 2


def run_check(args) -> int:
    path = os.path.join(args.data_dir, FILE_NAME)
    if not os.path.isfile(path):
        raise CommandError(f"no journal at {path} (give the master's --data-dir)", 2)
    if _held_by_a_master(path):
        raise CommandError(f"journal {path} is in use by a running master; stop it to check the journal", 1)
    with tempfile.TemporaryDirectory(prefix="titan-journal-check-") as scratch:
        for suffix in COPIED_SUFFIXES:
            if os.path.exists(path + suffix):
                shutil.copy2(path + suffix, os.path.join(scratch, FILE_NAME + suffix))
        try:
            found = _check_copy(scratch)
        except (JournalCorrupt, JournalInUse) as exc:
            print(f"journal {path}: DAMAGED\n  " + str(exc).replace(os.path.join(scratch, FILE_NAME), path))
            return 1
    print(f"journal {path}: OK\n" + "\n".join(f"  {line}" for line in found))
    return 0


def _held_by_a_master(path: str) -> bool:
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.lockf(fd, fcntl.LOCK_SH | fcntl.LOCK_NB, SQLITE_SHARED_SIZE, SQLITE_SHARED_FIRST)
        fcntl.lockf(fd, fcntl.LOCK_UN, SQLITE_SHARED_SIZE, SQLITE_SHARED_FIRST)
        return False
    except OSError:
        return True
    finally:
        os.close(fd)


def _check_copy(folder: str) -> list:
    """What a master would find on start, and more: the full integrity check, not the quick one."""
    journal = SqliteJournal(folder)
    try:
        (integrity,) = journal.db.execute("PRAGMA integrity_check").fetchone()
        if integrity != "ok":
            raise JournalCorrupt(f"journal {journal.path}: SQLite's integrity check failed: {integrity}")
        (rows,) = journal.db.execute("SELECT COUNT(*) FROM logs").fetchone()
        recovered = journal.load()
        acknowledged = CommitCounter(journal.path).read()
    except sqlite3.DatabaseError as exc:
        raise JournalCorrupt(f"journal {journal.path} cannot be read ({exc})") from None
    finally:
        journal.close()
    return [f"{len(recovered.runs)} jobs, {len(recovered.dags)} DAGs, {len(recovered.store)} store keys, "
            f"{rows} log rows, {len(recovered.deployed_scripts)} deployed scripts",
            "every row's checksum matches and every row decodes",
            f"{journal.commits_held} commits held; "
            + ("no record of acknowledged commits (a journal from before Titan kept one)" if acknowledged is None
               else f"{acknowledged} acknowledged: none lost")]
