"""``python -m mgdet`` (and ``torchrun ... -m mgdet train``) runs the command line."""

import sys

from mgdet.cli import main

sys.exit(main())
