"""What the command prints besides results: colour on a terminal, one-line errors and warnings."""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


def colour(text: str, code: str, stream: Any) -> str:
    """`text` in an ANSI colour on a terminal, plain elsewhere or when NO_COLOR is set (no-color.org)."""
    plain = os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb" or not stream.isatty()
    return text if plain else f"\033[{code}m{text}\033[0m"


def print_error(message: str) -> None:
    """`learnloop: error: MESSAGE` on stderr, 'error:' in red on a terminal."""
    print(f"learnloop: {colour('error:', '1;31', sys.stderr)} {message}", file=sys.stderr, flush=True)


@contextmanager
def one_line_warnings() -> Iterator[None]:
    """Warnings as `learnloop: warning: ...`, without the source line Python adds."""
    # formatwarning, not showwarning: pytest.warns and catch_warnings(record=True) still capture them
    original = warnings.formatwarning
    warnings.formatwarning = lambda message, *_, **__: f"learnloop: {colour('warning:', '33', sys.stderr)} {message}\n"
    try:
        yield
    finally:
        warnings.formatwarning = original


def silence_stdout() -> None:
    """Point stdout at /dev/null, so that writing or flushing what is left of it can't raise again at exit."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # no real file descriptor (pytest's capture, a notebook)
        pass


def quiet(*args: Any, **kwargs: Any) -> None:
    """`print` on ranks other than 0: nothing."""
