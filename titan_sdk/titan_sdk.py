"""The original SDK's module path: `from titan_sdk.titan_sdk import TitanClient, TitanJob` keeps working."""

from titan_sdk import *  # noqa: F401,F403
from titan_sdk import __all__  # noqa: F401
