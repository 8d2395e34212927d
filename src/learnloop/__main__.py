"""`python -m learnloop`: the `learnloop` command."""

import sys

from .cli import main

sys.exit(main())
