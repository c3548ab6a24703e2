"""`python -m titan`: the `titan` command."""

import sys

from titan.cli import main

sys.exit(main())
