"""Job output as the master keeps it: per job, the chunks of its current run in arrival order."""

from __future__ import annotations

from typing import Dict, List, Tuple


class JobLogs:
    def __init__(self) -> None:
        self._chunks: Dict[str, List[Tuple[int, str, str]]] = {}

    def append(self, job_id: str, attempt: int, stream: str, text: str) -> None:
        self._chunks.setdefault(job_id, []).append((attempt, stream, text))

    def reset(self, job_id: str) -> None:
        """A new run of the job starts with empty logs."""
        self._chunks.pop(job_id, None)

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

    def chunks(self, job_id: str) -> List[Tuple[int, str, str]]:
        return list(self._chunks.get(job_id, ()))
