"""`python -m learnloop ...` runs the `learnloop` command (and `torchrun -m learnloop ...` runs it on every rank)."""

import sys

from .cli import main

sys.exit(main())
