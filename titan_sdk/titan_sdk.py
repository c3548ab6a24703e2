"""The original SDK's module path: `from titan_sdk.titan_sdk import TitanClient, TitanJob` keeps working,
with the original's public constants.

TITAN_HOST and TITAN_PORT are read from the environment when they are read (not once at import), so a
process that sets TITAN_HOST/TITAN_PORT before making its client sees the same values the client uses.
Assigning them (`titan_sdk.titan_sdk.TITAN_PORT = 9191`) points every TitanClient made afterwards without
its own host/port at that address, as the original's module-level settings did.
"""

import os

from titan import defaults
from titan_sdk import *  # noqa: F401,F403
from titan_sdk import __all__ as _sdk_names

# The original's protocol version constant. Titan speaks another protocol; kept for scripts that print it.
VERSION = 1

__all__ = [*_sdk_names, "TITAN_HOST", "TITAN_PORT", "VERSION"]


def __getattr__(name: str):
    if name == "TITAN_HOST":
        return os.environ.get("TITAN_HOST") or defaults.DEFAULT_HOST
    if name == "TITAN_PORT":
        return int(os.environ.get("TITAN_PORT") or defaults.DEFAULT_PORT)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
