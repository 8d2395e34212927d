"""`python -m learnloop`: the `learnloop` command."""

from .cli import entry

entry()
