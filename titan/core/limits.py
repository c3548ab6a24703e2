"""The master's configurable limits, and the checks that turn a breach into a clear error.

Each error names the limit and the master flag that raises it; nothing else is affected by a breach.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Hashable, Tuple

from titan import defaults
from titan.core.errors import LimitExceeded


@dataclass
class Limits:
    jobs_per_dag: int = defaults.MAX_JOBS_PER_DAG
    script_bytes: int = defaults.MAX_SCRIPT_BYTES
    submits_per_second: float = defaults.MAX_SUBMITS_PER_SECOND
    store_value_bytes: int = defaults.MAX_STORE_VALUE_BYTES    # enforced by Store
    store_keys: int = defaults.MAX_STORE_KEYS                  # enforced by Store
    log_bytes: int = defaults.MAX_LOG_BYTES_PER_JOB            # enforced by JobLogs

    def check_job_count(self, count: int) -> None:
        if count > self.jobs_per_dag:
            raise LimitExceeded(f"a submission of {count:,} jobs is over the limit of {self.jobs_per_dag:,} jobs "
                                "per DAG (master flag --max-jobs-per-dag)", limit="max-jobs-per-dag")

    def check_script(self, job_id: str, size: int) -> None:
        if size > self.script_bytes:
            raise LimitExceeded(f"job {job_id!r}: its script or archive of {size:,} bytes is over the "
                                f"{self.script_bytes:,}-byte limit (master flag --max-script-bytes)",
                                limit="max-script-bytes", job_id=job_id)


class RateLimiter:
    """A token bucket per sender: `rate` requests a second, bursts of up to `rate` (at least 1)."""

    def __init__(self, rate: float, what: str, flag: str):
        self.rate, self.what, self.flag = rate, what, flag
        self.burst = max(1.0, rate)
        self._buckets: Dict[Hashable, Tuple[float, float]] = {}   # sender -> (tokens, when counted)

    def take(self, sender: Hashable, now: float) -> None:
        """Count one request from `sender`, or raise LimitExceeded if it has none left this second."""
        tokens, then = self._buckets.get(sender, (self.burst, now))
        tokens = min(self.burst, tokens + (now - then) * self.rate)
        if tokens < 1.0:
            self._buckets[sender] = (tokens, now)
            raise LimitExceeded(f"more than {self.rate:g} {self.what} a second from this client; slow down "
                                f"or raise the master flag {self.flag}", limit=self.flag.lstrip("-"))
        self._buckets[sender] = (tokens - 1.0, now)
        if len(self._buckets) > 10_000:   # forget senders whose bucket has refilled: they owe nothing
            self._buckets = {s: (t, w) for s, (t, w) in self._buckets.items()
                             if t + (now - w) * self.rate < self.burst}
