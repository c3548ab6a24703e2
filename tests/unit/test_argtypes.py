"""Durations and moments as the master's --keep-* flags and `titan jobs --since` / `titan forget --before` read them."""

from __future__ import annotations

import argparse
import time

import pytest

from titan.argtypes import duration, keep_duration, non_negative_int
from titan.cli.history import moment


@pytest.mark.parametrize("text, seconds", [("90", 90), ("30s", 30), ("10m", 600), ("2h", 7_200), ("1d", 86_400),
                                           ("1w", 604_800), ("1.5h", 5_400), ("0", 0)])
def test_a_duration_is_read_in_seconds(text, seconds):
    assert duration(text) == seconds


@pytest.mark.parametrize("text", ["", "d", "ten minutes", "-5s", "inf", "nan", "5x"])
def test_a_bad_duration_is_refused_naming_what_to_write(text):
    with pytest.raises(argparse.ArgumentTypeError, match="duration"):
        duration(text)


def test_keep_forever_and_counts():
    assert keep_duration("forever") is None and keep_duration("10s") == 10
    assert non_negative_int("0") == 0
    with pytest.raises(argparse.ArgumentTypeError, match="must be 0 or more"):
        non_negative_int("-1")


def test_a_moment_is_a_date_or_an_age():
    assert moment("2026-12-01") == time.mktime((2026, 12, 1, 0, 0, 0, 0, 0, -1))
    assert abs(moment("1h") - (time.time() - 3_600)) < 5
    with pytest.raises(argparse.ArgumentTypeError, match="neither a date"):
        moment("last tuesday")
