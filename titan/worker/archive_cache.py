"""A worker's project archives: fetched from the master at most once per content hash, extracted once.

A dispatched job whose archive is not here waits while the worker pulls the archive, one chunk per
request ("fetch_archive" -> "archive_chunk"), so a worker that restarted (and lost its cache) heals
itself by asking again. Every job waiting on the same hash starts when it is extracted, or fails with
the reason it could not be (e.g. an entry that would leave the folder).
"""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

from titan import defaults
from titan.archives import ArchiveError, safe_extract
from titan.net import protocol


@dataclass
class _Fetch:
    sha256: str
    part_path: str
    received: int = 0
    last_request: float = float("-inf")
    last_progress: float = 0.0
    hasher: "hashlib._Hash" = field(default_factory=hashlib.sha256)
    waiting: List[dict] = field(default_factory=list)   # dispatch messages of the jobs that need it


# What a finished fetch hands back: the dispatches that waited, and the project folder or the error.
Outcome = Tuple[List[dict], Optional[str], Optional[str]]


class ArchiveCache:
    def __init__(self, root: str):
        self.root = root
        os.makedirs(root, exist_ok=True)
        self.fetches: Dict[str, _Fetch] = {}
        self.fetches_started = 0

    def ready(self, sha256: str) -> Optional[str]:
        """The extracted project folder, if this worker has it."""
        path = os.path.join(self.root, sha256)
        return path if os.path.isdir(path) else None

    def wait_for(self, sha256: str, dispatch: dict, now: float) -> Optional[dict]:
        """Hold the dispatch until the archive is here; returns the request to send if a fetch starts."""
        fetch = self.fetches.get(sha256)
        if fetch is None:
            fetch = self.fetches[sha256] = _Fetch(sha256, os.path.join(self.root, f"{sha256}.zip.part"),
                                                  last_progress=now)
            open(fetch.part_path, "wb").close()
            self.fetches_started += 1
        key = _job_key(dispatch)
        if all(_job_key(waiting) != key for waiting in fetch.waiting):
            fetch.waiting.append(dispatch)
        return self._request(fetch, now) if fetch.received == 0 and fetch.last_request < 0 else None

    def waiting_jobs(self) -> List[Tuple[str, int]]:
        return [_job_key(d) for fetch in self.fetches.values() for d in fetch.waiting]

    def drop_job(self, job_id: str, attempt: int) -> bool:
        """Forget a waiting dispatch (it was stopped); True if there was one."""
        return self._drop(lambda key: key == (job_id, attempt))

    def drop_other_attempts(self, job_id: str, attempt: int) -> None:
        """The master has moved on to `attempt`: an older one still waiting must never start."""
        self._drop(lambda key: key[0] == job_id and key[1] != attempt)

    def _drop(self, matches) -> bool:
        dropped = False
        for fetch in self.fetches.values():
            kept = [d for d in fetch.waiting if not matches(_job_key(d))]
            dropped = dropped or len(kept) != len(fetch.waiting)
            fetch.waiting = kept
        return dropped

    def on_chunk(self, message: dict, now: float) -> Tuple[Optional[dict], Optional[Outcome]]:
        """Take one chunk: returns the next request to send, or the outcome once the fetch is over."""
        fetch = self.fetches.get(message["sha256"])
        if fetch is None or message["offset"] != fetch.received:
            return None, None   # a late duplicate of a chunk already taken
        if message.get("error"):
            return None, self._end(fetch, None, message["error"])
        data = message["data"]
        try:
            with open(fetch.part_path, "ab") as handle:
                handle.write(data)
        except OSError as exc:
            return None, self._end(fetch, None, f"project archive could not be saved on this worker: {exc}")
        fetch.hasher.update(data)
        fetch.received += len(data)
        fetch.last_progress = now
        if fetch.received < message["size"] and data:
            return self._request(fetch, now), None
        return None, self._finish(fetch)

    def stale_requests(self, now: float, force: bool = False) -> List[dict]:
        """Requests to send again: their answer is overdue (lost, or the master restarted)."""
        return [self._request(fetch, now) for fetch in self.fetches.values()
                if force or now - fetch.last_request > defaults.ARCHIVE_FETCH_RETRY_S]

    def given_up(self, now: float) -> List[Outcome]:
        """Fetches that made no progress for too long: their jobs fail rather than wait for ever."""
        stalled = [fetch for fetch in self.fetches.values()
                   if now - fetch.last_progress > defaults.ARCHIVE_FETCH_GIVE_UP_S]
        return [self._end(fetch, None, f"no part of project archive {fetch.sha256[:16]}... arrived from the "
                                       f"master for {defaults.ARCHIVE_FETCH_GIVE_UP_S:g}s") for fetch in stalled]

    def _request(self, fetch: _Fetch, now: float) -> dict:
        fetch.last_request = now
        return protocol.message(protocol.WORKER_OPS, "fetch_archive", sha256=fetch.sha256, offset=fetch.received)

    def _finish(self, fetch: _Fetch) -> Outcome:
        if fetch.hasher.hexdigest() != fetch.sha256:
            return self._end(fetch, None, f"project archive {fetch.sha256[:16]}... arrived damaged (its sha256 "
                                          "does not match); the job can be retried")
        destination = os.path.join(self.root, fetch.sha256)
        try:
            safe_extract(fetch.part_path, destination)
        except ArchiveError as exc:
            return self._end(fetch, None, f"project archive refused: {exc}")
        except OSError as exc:
            return self._end(fetch, None, f"project archive could not be extracted: {exc}")
        return self._end(fetch, destination, None)

    def _end(self, fetch: _Fetch, path: Optional[str], error: Optional[str]) -> Outcome:
        del self.fetches[fetch.sha256]
        try:
            os.unlink(fetch.part_path)
        except FileNotFoundError:
            pass
        return fetch.waiting, path, error

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def _job_key(dispatch: dict) -> Tuple[str, int]:
    return dispatch["job"]["job_id"], dispatch["attempt"]
