import sys

from kfops.cli import main

sys.exit(main())
