"""Job output as the master keeps it: per job, the chunks of its current run in arrival order."""

from __future__ import annotations

from bisect import bisect_right
from typing import Dict, List, Tuple

FIRST_ATTEMPT = 1


class JobLogs:
    def __init__(self) -> None:
        self._chunks: Dict[str, List[Tuple[int, str, str]]] = {}
        # The same output as one growing text, for readers that follow it by offset: pieces (chunks, and
        # a marker where a new attempt starts) and the offset where each piece ends. Unlike text(), it
        # never changes what was already read: attempt 1 gets no marker after the fact.
        self._pieces: Dict[str, List[str]] = {}
        self._ends: Dict[str, List[int]] = {}
        self._attempt: Dict[str, int] = {}

    def append(self, job_id: str, attempt: int, stream: str, text: str) -> None:
        self._chunks.setdefault(job_id, []).append((attempt, stream, text))
        if attempt != self._attempt.get(job_id, FIRST_ATTEMPT):
            pieces = self._pieces.get(job_id)
            newline = "\n" if pieces and not pieces[-1].endswith("\n") else ""
            self._add_piece(job_id, f"{newline}--- attempt {attempt} ---\n")
        self._attempt[job_id] = attempt
        self._add_piece(job_id, text)

    def _add_piece(self, job_id: str, text: str) -> None:
        ends = self._ends.setdefault(job_id, [])
        self._pieces.setdefault(job_id, []).append(text)
        ends.append((ends[-1] if ends else 0) + len(text))

    def reset(self, job_id: str) -> None:
        """A new run of the job starts with empty logs."""
        for per_job in (self._chunks, self._pieces, self._ends, self._attempt):
            per_job.pop(job_id, None)

    def text(self, job_id: str) -> str:
        """stdout and stderr interleaved as they arrived; when there were several attempts, each one's
        output starts with a '--- attempt N ---' line."""
        chunks = self._chunks.get(job_id, ())
        marked = len({attempt for attempt, _, _ in chunks}) > 1
        parts: List[str] = []
        last_attempt = None
        for attempt, _stream, text in chunks:
            if marked and attempt != last_attempt:
                if parts and not parts[-1].endswith("\n"):
                    parts.append("\n")
                parts.append(f"--- attempt {attempt} ---\n")
            last_attempt = attempt
            parts.append(text)
        return "".join(parts)

    def text_since(self, job_id: str, offset: int) -> Tuple[str, int]:
        """(the output after the first `offset` characters, the offset after it). Attempts after the first
        start with a '--- attempt N ---' line. An offset past the end (the job was submitted again and its
        logs started over) reads from the start."""
        ends = self._ends.get(job_id, [])
        total = ends[-1] if ends else 0
        if offset > total:
            offset = 0
        first = bisect_right(ends, offset)
        pieces = self._pieces.get(job_id, [])[first:]
        if not pieces:
            return "", total
        start_of_first = ends[first - 1] if first else 0
        return "".join(pieces)[offset - start_of_first:], total

    def chunks(self, job_id: str) -> List[Tuple[int, str, str]]:
        return list(self._chunks.get(job_id, ()))
