"""The reply cache: a retried request (same request id) gets the first answer, not a second action.

A reply that names jobs (a submission, a cancel, a retry, a gate's decision ...) names their runs, and
goes when the last of them is forgotten (titan/core/retention.py): a forgotten job leaves memory and the
journal with its cached replies. A DAG submission's reply names every run it admitted, so a retry of it
is answered as long as any of them is kept; once all are forgotten the request id is unknown again (a
retry that late would submit the DAG anew; clients retry within seconds, jobs are kept for hours). A
reply that names no run (the store's, deploy_script, forget) goes only as the oldest past `size`.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Dict, Iterable, List, Optional

from titan import defaults


class _Named:
    """A cached reply that names runs: how many of them are still kept (None once the reply is gone)."""

    __slots__ = ("key", "left")

    def __init__(self, key: str, left: int):
        self.key, self.left = key, left


class ReplyCache:
    """Recent replies by request id, so a retried request gets the first answer instead of a second action."""

    def __init__(self, size: int = defaults.REPLY_CACHE_SIZE):
        self.size = size
        self._replies: "OrderedDict[str, bytes]" = OrderedDict()
        self._named: Dict[str, _Named] = {}
        self._by_seq: dict = {}   # run seq -> the _Named reply naming it, or a list of them (rare)

    def __len__(self) -> int:
        return len(self._replies)

    def get(self, rid: str) -> Optional[bytes]:
        return self._replies.get(rid)

    def put(self, rid: str, reply: bytes, seqs: Iterable[int] = ()) -> None:
        """Cache `reply`; `seqs`: the runs it names (it goes with the last of them)."""
        self._drop(rid)
        self._replies[rid] = reply
        seqs = set(seqs)
        if seqs:
            named = self._named[rid] = _Named(rid, len(seqs))
            for seq in seqs:
                held = self._by_seq.get(seq)
                self._by_seq[seq] = named if held is None else [*(held if isinstance(held, list) else [held]), named]
        if len(self._replies) > self.size:
            self._drop(next(iter(self._replies)))

    def forgot(self, seqs: Iterable[int]) -> List[str]:
        """These runs were forgotten: drop the replies that named no other run kept; returns their ids."""
        if not self._by_seq:
            return []
        dropped = []
        for seq in seqs:
            held = self._by_seq.pop(seq, None)
            for named in (held if isinstance(held, list) else (held,) if held is not None else ()):
                if named.left is None:
                    continue   # gone already, as the oldest
                named.left -= 1
                if named.left == 0:
                    self._drop(named.key)
                    dropped.append(named.key)
        return dropped

    def _drop(self, rid: str) -> None:
        self._replies.pop(rid, None)
        named = self._named.pop(rid, None)
        if named is not None:
            named.left = None   # its runs' entries in _by_seq go when they are forgotten


def named_jobs(result) -> List[str]:
    """The job ids a request's result names: a job's description (job_id), a submission's ids, a DAG's
    job descriptions (jobs). Read from the result, so a reply loaded from the journal says it too."""
    if not isinstance(result, dict):
        return []
    named = [result["job_id"]] if isinstance(result.get("job_id"), str) else []
    for job in result.get("jobs") or () if isinstance(result.get("jobs"), list) else ():
        job_id = job.get("job_id") if isinstance(job, dict) else job
        if isinstance(job_id, str):
            named.append(job_id)
    return named
