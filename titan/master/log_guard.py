"""The master's own log, guarded against its peers: text they sent (job ids, names, errors) cannot forge
lines or move a terminal's cursor, and one message repeated many times cannot fill a disk.

A flood of bad requests once wrote 1.2 GB of log in six minutes; now each kind of message (its format
string) is written at most `repeats` times per WINDOW_S (--max-log-repeats), and the next one after that
says how many were left out.
"""

from __future__ import annotations

import logging
import time
from typing import Dict, Tuple

from titan import defaults

WINDOW_S = 60.0
MAX_ARG_CHARS = 500


def escaped(text: str) -> str:
    """`text` with every non-printable character (newlines, escapes, NUL) shown as its escape, and cut."""
    if len(text) > MAX_ARG_CHARS:
        text = text[:MAX_ARG_CHARS] + f"... ({len(text):,} characters)"
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


class LogGuard(logging.Filter):
    def __init__(self, repeats: int = defaults.MAX_LOG_REPEATS, clock=time.monotonic):
        super().__init__()
        self.repeats = repeats   # 0: no limit
        self.clock = clock
        self._windows: Dict[Tuple[str, int, str], list] = {}   # (logger, level, format) -> [start, count]

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._within_rate(record):
            return False
        if isinstance(record.args, tuple):
            record.args = tuple(escaped(arg) if isinstance(arg, str) else arg for arg in record.args)
        return True

    def _within_rate(self, record: logging.LogRecord) -> bool:
        if not self.repeats:
            return True
        key = (record.name, record.levelno, str(record.msg))
        now = self.clock()
        window = self._windows.get(key)
        if window is None or now - window[0] >= WINDOW_S:
            left_out = window[1] - self.repeats if window and window[1] > self.repeats else 0
            if left_out:
                record.msg = f"{record.msg} (and {left_out:,} more like it in the last {WINDOW_S:g}s, not shown)"
            if len(self._windows) > 10_000:   # formats are few; this only bounds a pathological caller
                self._windows.clear()
            self._windows[key] = [now, 1]
            return True
        window[1] += 1
        return window[1] <= self.repeats
