import sys

from titan.cli.parser import main

sys.exit(main())
