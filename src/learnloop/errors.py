"""Errors that are the user's to fix (bad data, paths, flags, checkpoints), as opposed to bugs.

The `learnloop` command prints a `UserError` as one line and exits with status 2; any other exception is a
bug and keeps its traceback. Each class also derives from the built-in error Python code would expect
(`ValueError`, `ImportError`, `FileNotFoundError`, `OSError`, `pickle.UnpicklingError`), so `except ValueError` still works.
This module imports nothing from learnloop: `data`, `nn` and the callbacks can all raise these.
"""

from __future__ import annotations

import pickle


class UserError(Exception):
    """A mistake in what was passed (data, paths, arguments, a checkpoint), not a bug; the message says what to fix."""


class DataError(UserError, ValueError):
    """Data that can't be used as it is: a truncated file, a corrupt image, an image folder with one class, ..."""


class SettingError(UserError, ValueError):
    """A setting that can't work as given: a flag's value, a device this machine lacks, a tracking store, ..."""


class MissingPackageError(UserError, ImportError):
    """An optional package (torchvision, timm, ...) that a setting needs can't be imported; the message says how
    to install it."""


class MissingFileError(UserError, FileNotFoundError):
    """A file or folder that should exist does not."""


class OutputPathError(UserError, OSError):
    """A path that can't be written: a folder under a regular file, no permission, a read-only disk."""


class CheckpointError(UserError, ValueError):
    """A checkpoint that can't be read, or doesn't fit the run that resumes from it."""


class UnsafeCheckpointError(CheckpointError, pickle.UnpicklingError):
    """A checkpoint holding objects other than tensors and plain containers: loading it could run code."""
