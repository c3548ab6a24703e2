"""argparse types shared by the master's options and the `titan` command's."""

from __future__ import annotations

import argparse


def positive(kind):
    """An argparse type: the text as `kind`, refused unless it is more than 0."""
    def parse(text: str):
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be more than 0, got {text}")
        return value
    parse.__name__ = f"positive_{kind.__name__}"   # argparse names it in "invalid positive_int value"
    return parse


positive_float = positive(float)
positive_int = positive(int)


DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 7 * 86_400}


def duration(text: str) -> float:
    """An argparse type: a length of time in seconds, written `90`, `30s`, `10m`, `2h`, `1d` or `1w`."""
    spelled = text.strip().lower()
    unit = DURATION_UNITS.get(spelled[-1:], None)
    number = spelled[:-1] if unit is not None else spelled
    try:
        value = float(number) * (unit or 1)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration: write e.g. 30s, 10m, 2h, 1d") from None
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration of 0 or more seconds")
    return value


def keep_duration(text: str):
    """A duration, or None for 'forever' (how long something is kept)."""
    return None if text.strip().lower() in ("forever", "never") else duration(text)


def non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value
