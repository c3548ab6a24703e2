"""--log-level and TITAN_LOG_LEVEL, the same for the master, the worker and the dashboard."""

from __future__ import annotations

import argparse
import logging
import os
from typing import Optional

LOG_LEVEL_ENV = "TITAN_LOG_LEVEL"
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
DEFAULT_LEVEL = "INFO"


def add_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--log-level", type=str.upper, choices=LEVELS, default=None,
                        help=f"how much to log: {', '.join(LEVELS)} (default: ${LOG_LEVEL_ENV}, else {DEFAULT_LEVEL})")


def configure(level: Optional[str], role: str) -> None:
    """Log at `level`, else TITAN_LOG_LEVEL, else INFO; a bad TITAN_LOG_LEVEL stops the process naming it."""
    chosen = (level or os.environ.get(LOG_LEVEL_ENV) or DEFAULT_LEVEL).upper()
    if chosen not in LEVELS:
        raise SystemExit(f"titan {role}: {LOG_LEVEL_ENV} must be one of {', '.join(LEVELS)}, got {chosen!r}")
    logging.basicConfig(level=chosen, format=f"%(asctime)s {role} %(levelname)s %(message)s")
