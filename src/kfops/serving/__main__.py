"""``python -m kfops.serving --model-dir /mnt/models``: the predictor image's entry point."""

import sys

from kfops.serving.server import main

sys.exit(main())
