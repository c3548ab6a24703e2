import sys

from titan.mcp.command import main

sys.exit(main())
