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
