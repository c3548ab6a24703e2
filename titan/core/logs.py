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
        """stdout and stderr interleaved as they arrived; earlier attempts marked off from later ones."""
        parts: List[str] = []
        last_attempt = None
        for attempt, _stream, text in self._chunks.get(job_id, ()):
            if last_attempt is not None and attempt != last_attempt:
                parts.append(f"\n--- attempt {attempt} ---\n")
            last_attempt = attempt
            parts.append(text)
        return "".join(parts)

    def chunks(self, job_id: str) -> List[Tuple[int, str, str]]:
        return list(self._chunks.get(job_id, ()))
