"""The master's log guard: peers' text escaped, repeated messages rate-limited (with a fake clock)."""

from __future__ import annotations

import logging

from titan.master import log_guard
from titan.master.log_guard import LogGuard, escaped


def record(msg: str, *args, level=logging.WARNING) -> logging.LogRecord:
    return logging.LogRecord("titan.master", level, __file__, 1, msg, args, None)


def test_peer_text_cannot_forge_lines_or_move_the_cursor():
    guard = LogGuard()
    forged = record("refused a request: %s", "bad\n2026-12-03 master INFO all is well\x1b[2J\0")
    assert guard.filter(forged)
    shown = forged.getMessage()
    assert "\n" not in shown and "\x1b" not in shown and "\0" not in shown
    assert "\\n2026-12-03 master INFO all is well\\x1b[2J\\x00" in shown


def test_long_peer_text_is_cut_saying_how_long_it_was():
    assert escaped("x" * 10_000) == "x" * log_guard.MAX_ARG_CHARS + "... (10,000 characters)"
    assert escaped("plain, printable é") == "plain, printable é"


REPEATS = 20


def test_a_repeated_message_is_written_a_few_times_per_window_then_counted():
    now = [0.0]
    guard = LogGuard(REPEATS, clock=lambda: now[0])
    passed = [guard.filter(record("refused a request: %s", f"#{i}")) for i in range(50)]
    assert passed == [True] * REPEATS + [False] * (50 - REPEATS)
    assert guard.filter(record("another kind: %s", "x")), "each kind of message has its own window"
    now[0] += log_guard.WINDOW_S
    later = record("refused a request: %s", "#50")
    assert guard.filter(later)
    assert f"and {50 - REPEATS:,} more like it" in later.getMessage()
    assert later.getMessage().startswith("refused a request: #50 (and ")


def test_no_limit_when_asked():
    guard = LogGuard(0)
    assert all(guard.filter(record("refused a request: %s", i)) for i in range(100))
