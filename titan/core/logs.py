"""Job output as the master keeps it: per job, the chunks of its current run in arrival order.

At most `max_bytes` (UTF-8) of output are kept per job: when more arrives, the oldest is dropped and the
text starts with a marker line saying how much. The job itself is never touched.
"""

from __future__ import annotations

from collections import deque
from typing import Deque, Dict, List, Tuple

from titan import defaults

Chunk = Tuple[int, str, str]   # attempt, stream, text


class _JobOutput:
    __slots__ = ("chunks", "sizes", "kept", "dropped")

    def __init__(self) -> None:
        self.chunks: Deque[Chunk] = deque()
        self.sizes: Deque[int] = deque()
        self.kept = 0
        self.dropped = 0


class JobLogs:
    def __init__(self, max_bytes: int = defaults.MAX_LOG_BYTES_PER_JOB) -> None:
        self.max_bytes = max_bytes
        self._jobs: Dict[str, _JobOutput] = {}

    def append(self, job_id: str, attempt: int, stream: str, text: str) -> None:
        output = self._jobs.get(job_id)
        if output is None:
            output = self._jobs[job_id] = _JobOutput()
        size = len(text.encode("utf-8", "surrogatepass"))
        output.chunks.append((attempt, stream, text))
        output.sizes.append(size)
        output.kept += size
        if output.kept > self.max_bytes:
            self._drop_oldest(output)

    def _drop_oldest(self, output: _JobOutput) -> None:
        excess = output.kept - self.max_bytes
        while excess > 0 and output.sizes[0] <= excess:
            size = output.sizes.popleft()
            output.chunks.popleft()
            output.kept -= size
            output.dropped += size
            excess -= size
        if excess > 0:   # cut the front of the oldest chunk left
            attempt, stream, text = output.chunks[0]
            rest = text.encode("utf-8", "surrogatepass")[excess:].decode("utf-8", "ignore")
            rest_size = len(rest.encode("utf-8", "surrogatepass"))
            output.chunks[0] = (attempt, stream, rest)
            output.dropped += output.sizes[0] - rest_size
            output.kept -= output.sizes[0] - rest_size
            output.sizes[0] = rest_size

    def reset(self, job_id: str) -> None:
        """A new run of the job starts with empty logs."""
        self._jobs.pop(job_id, None)

    def text(self, job_id: str) -> str:
        """stdout and stderr interleaved as they arrived; when there were several attempts, each one's
        output starts with a '--- attempt N ---' line; when output was dropped, a line says so first."""
        output = self._jobs.get(job_id)
        if output is None:
            return ""
        parts: List[str] = []
        if output.dropped:
            parts.append(f"[titan: {output.dropped:,} earlier bytes of output dropped; the master keeps the "
                         f"last {self.max_bytes:,} bytes per job (master flag --max-log-bytes)]\n")
        marked = len({attempt for attempt, _, _ in output.chunks}) > 1
        last_attempt = None
        for attempt, _stream, text in output.chunks:
            if marked and attempt != last_attempt:
                if parts and not parts[-1].endswith("\n"):
                    parts.append("\n")
                parts.append(f"--- attempt {attempt} ---\n")
            last_attempt = attempt
            parts.append(text)
        return "".join(parts)

    def chunks(self, job_id: str) -> List[Chunk]:
        output = self._jobs.get(job_id)
        return list(output.chunks) if output is not None else []
