import sys

from titan.master.command import main

sys.exit(main())
