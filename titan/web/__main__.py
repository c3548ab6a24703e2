import sys

from titan.web.command import main

sys.exit(main())
