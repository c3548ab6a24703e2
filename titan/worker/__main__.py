import sys

from titan.worker.command import main

sys.exit(main())
