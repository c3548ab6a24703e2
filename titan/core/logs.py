"""Job output as the master keeps it: per job, the chunks of its current run in arrival order.

At most `max_bytes` (UTF-8) of output are kept per job: when more arrives, the oldest is dropped and the
text starts with a marker line saying how much. The job itself is never touched.

Followers read the output by offset (text_since): the characters of one growing text, where a new attempt
starts with a marker line. Unlike text(), it never changes what was already read, so offsets stay valid
while output is appended and old output dropped.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import deque
from typing import Deque, Dict, List, Tuple

from titan import defaults

Chunk = Tuple[int, str, str]   # attempt, stream, text
FIRST_ATTEMPT = 1


class _JobOutput:
    __slots__ = ("chunks", "sizes", "kept", "dropped", "marks", "starts", "first", "end", "attempt")

    def __init__(self) -> None:
        self.chunks: Deque[Chunk] = deque()
        self.sizes: Deque[int] = deque()
        self.kept = 0
        self.dropped = 0
        # For followers, per chunk: the attempt marker before it ("" mostly) and the offset where that
        # marker starts in the followed text; `end` is that text's length so far. `starts` is a list, to
        # be bisected, whose dropped head is skipped (`first`) and cut only now and then: deleting its
        # first item at every append of a job at its log cap would shift the whole list each time.
        self.marks: Deque[str] = deque()
        self.starts: List[int] = []
        self.first = 0
        self.end = 0
        self.attempt = FIRST_ATTEMPT

    def followed(self, index: int) -> str:
        return self.marks[index] + self.chunks[index][2]


class JobLogs:
    def __init__(self, max_bytes: int = defaults.MAX_LOG_BYTES_PER_JOB) -> None:
        self.max_bytes = max_bytes
        self._jobs: Dict[str, _JobOutput] = {}

    def append(self, job_id: str, attempt: int, stream: str, text: str) -> None:
        output = self._jobs.get(job_id)
        if output is None:
            output = self._jobs[job_id] = _JobOutput()
        size = len(text.encode("utf-8", "surrogatepass"))
        self._mark(output, attempt)
        output.chunks.append((attempt, stream, text))
        output.end += len(text)
        output.sizes.append(size)
        output.kept += size
        if output.kept > self.max_bytes:
            self._drop_oldest(output)

    @staticmethod
    def _mark(output: _JobOutput, attempt: int) -> None:
        mark = ""
        if attempt != output.attempt:
            newline = "\n" if output.chunks and not output.followed(-1).endswith("\n") else ""
            mark = f"{newline}--- attempt {attempt} ---\n"
        output.attempt = attempt
        output.marks.append(mark)
        output.starts.append(output.end)
        output.end += len(mark)

    def _drop_oldest(self, output: _JobOutput) -> None:
        excess = output.kept - self.max_bytes
        while excess > 0 and output.sizes[0] <= excess:
            size = output.sizes.popleft()
            output.chunks.popleft()
            output.marks.popleft()
            output.first += 1
            output.kept -= size
            output.dropped += size
            excess -= size
        if excess > 0:   # cut the front of the oldest chunk left
            attempt, stream, text = output.chunks[0]
            rest = text.encode("utf-8", "surrogatepass")[excess:].decode("utf-8", "ignore")
            rest_size = len(rest.encode("utf-8", "surrogatepass"))
            output.chunks[0] = (attempt, stream, rest)
            output.starts[output.first] += len(output.marks[0]) + len(text) - len(rest)
            output.marks[0] = ""
            output.dropped += output.sizes[0] - rest_size
            output.kept -= output.sizes[0] - rest_size
            output.sizes[0] = rest_size
        if output.first > len(output.starts) // 2:
            del output.starts[:output.first]
            output.first = 0

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

    def text_since(self, job_id: str, offset: int) -> Tuple[str, int]:
        """(the followed text after its first `offset` characters, the offset after it). What was dropped
        before it was read is replaced by a line saying so. An offset past the end (the job was submitted
        again and its logs started over) reads from the start."""
        output = self._jobs.get(job_id)
        if output is None:
            return "", 0
        if offset > output.end:
            offset = 0
        if not output.chunks:
            return "", output.end
        first_kept = output.starts[output.first]
        note = ""
        if offset < first_kept:
            note = (f"[titan: {first_kept - offset:,} characters of output dropped before they were read; the "
                    f"master keeps the last {self.max_bytes:,} bytes per job]\n")
            offset = first_kept
        index = bisect_right(output.starts, offset, lo=output.first) - 1
        pieces = [output.followed(i) for i in range(index - output.first, len(output.chunks))]
        return note + "".join(pieces)[offset - output.starts[index]:], output.end

    def chunks(self, job_id: str) -> List[Chunk]:
        output = self._jobs.get(job_id)
        return list(output.chunks) if output is not None else []
