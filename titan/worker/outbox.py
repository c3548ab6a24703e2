"""What a worker has to tell its master, held until the socket takes it: nothing is dropped.

A job printing faster than the link to the master made the worker drop whole outgoing batches, results
and heartbeats with them. Here messages wait instead, in two queues: control messages (heartbeats,
registrations, service and archive messages) leave first, and a job's output and its result share one
queue in the order they happened, so a result never overtakes the output before it. The worker stops
reading a job's pipes while that job's output waiting here is over a bound (`backlog`), so a job that
writes faster than the master takes it blocks on its own writes: back-pressure, not loss.

Sans I/O: the worker's loop encodes what `take_frame` gives, sends it, and gives it back if the socket
would block.
"""

from __future__ import annotations

from collections import Counter, deque
from typing import Deque, List, Optional

from titan import defaults

# A heartbeat or a registration says how things are now: only the newest one waiting is worth sending.
SNAPSHOT_OPS = frozenset({"register", "heartbeat"})
IN_JOB_ORDER_OPS = frozenset({"log", "finished"})


class Outbox:
    def __init__(self, frame_bytes: int = defaults.WORKER_FRAME_BYTES):
        self.frame_bytes = frame_bytes
        self._control: List[dict] = []
        self._in_order: Deque[dict] = deque()
        self._output_bytes: Counter = Counter()   # job id -> bytes of its output waiting here
        self._results: set = set()                # (job id, attempt) of the results waiting here

    def __bool__(self) -> bool:
        return bool(self._control or self._in_order)

    def add(self, message: dict) -> None:
        op = message["op"]
        if op in SNAPSHOT_OPS:
            self._control = [m for m in self._control if m["op"] != op]
        if op not in IN_JOB_ORDER_OPS:
            self._control.append(message)
        elif op == "log":
            self._in_order.append(message)
            self._output_bytes[message["job_id"]] += len(message["data"])
        elif (message["job_id"], message["attempt"]) not in self._results:   # a re-sent result still here
            self._results.add((message["job_id"], message["attempt"]))
            self._in_order.append(message)

    def output_only_of(self) -> set:
        """The jobs whose output waits here, when nothing else does (else an empty set)."""
        if self._control or self._results:
            return set()
        return set(self._output_bytes)

    def results_and_output_only(self) -> bool:
        """Whether results wait here, with nothing but jobs' output beside them (no control message)."""
        return bool(self._results) and not self._control

    def backlog(self, job_id: str) -> int:
        """Bytes of the job's output not yet taken by the socket."""
        return self._output_bytes.get(job_id, 0)

    def take_frame(self) -> List[dict]:
        """The next frame's messages: every control message, then output and results in order, up to about
        frame_bytes (at least one)."""
        taken, self._control = self._control, []
        size = 0
        while self._in_order and (size < self.frame_bytes or not taken):
            message = self._in_order.popleft()
            taken.append(message)
            size += self._forget(message)
        return taken

    def give_back(self, messages: List[dict]) -> None:
        """Messages the socket would not take, to go first next time (newer snapshots win)."""
        control = [m for m in messages if m["op"] not in IN_JOB_ORDER_OPS]
        newer = {m["op"] for m in self._control if m["op"] in SNAPSHOT_OPS}
        self._control = [m for m in control if m["op"] not in newer] + self._control
        in_order = [m for m in messages if m["op"] in IN_JOB_ORDER_OPS]
        for message in reversed(in_order):
            self._in_order.appendleft(message)
            self._remember(message)

    def _forget(self, message: dict) -> int:
        if message["op"] == "finished":
            self._results.discard((message["job_id"], message["attempt"]))
            return 0
        size = len(message["data"])
        left = self._output_bytes[message["job_id"]] - size
        if left > 0:
            self._output_bytes[message["job_id"]] = left
        else:
            del self._output_bytes[message["job_id"]]
        return size

    def _remember(self, message: dict) -> None:
        if message["op"] == "finished":
            self._results.add((message["job_id"], message["attempt"]))
        else:
            self._output_bytes[message["job_id"]] += len(message["data"])


def results_held_until(first_result_at: float, now: float, other_starts) -> Optional[float]:
    """Until when waiting results (and output) are held, or None to send them now: while another job
    whose end comes as a message started less than WORKER_OUTPUT_HOLD_S ago (`other_starts`: when each
    such job started), its result is likely moments away and then leaves in the same frame, up to
    WORKER_RESULT_HOLD_S after the first result. With no such job (a chain, a single job) nothing waits."""
    until = first_result_at + defaults.WORKER_RESULT_HOLD_S
    if until <= now:
        return None
    young = now - defaults.WORKER_OUTPUT_HOLD_S
    return until if any(started > young for started in other_starts) else None
