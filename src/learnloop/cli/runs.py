"""The run folder (--out): where a run goes by default, what an earlier run in it looks like, and when it may be
continued, replaced or must be left alone."""

from __future__ import annotations

import shutil
from pathlib import Path

from ..errors import UserError

RUN_FILES = ("model.pt", "last.ckpt", "history.csv", "loss.png", "tb", "config.json")  # what `fit` writes into OUT


def default_out(dataset: str) -> Path:
    """runs/<DATA's name>: `fit .` too gets the folder's own name."""
    return Path("runs") / Path(dataset).resolve().name


def prepare_out(out: Path, resume: bool = False, overwrite: bool = False) -> None:
    """Check OUT before anything trains: it must be writable, and an earlier run in it is continued (`resume`),
    replaced (`overwrite`), or else left alone with a UserError."""
    from ..callbacks.logging import ensure_writable_dir
    from ..distributed import is_main

    if resume and overwrite:
        raise UserError("--resume continues the run in --out and --overwrite replaces it: pass one of them.")
    ensure_writable_dir(out, "--out")
    if resume:
        if not (out / "last.ckpt").is_file():
            raise UserError(f"--resume: there is no checkpoint {out / 'last.ckpt'} to continue from; run without "
                            f"--resume to start a new run.")
        return
    found = earlier_run(out)
    if found and not overwrite:
        raise UserError(f"{out} already holds a run ({', '.join(found)}): pass --resume to continue it, "
                        f"--overwrite to replace it, or another --out.")
    if overwrite and is_main():  # under torchrun rank 0 alone deletes, as it alone writes
        for name in RUN_FILES:
            path = out / name
            shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)


def earlier_run(out: Path) -> list[str]:
    """The files of a finished or stopped run in `out`: model.pt, last.ckpt, a history.csv with rows."""
    found = [name for name in ("model.pt", "last.ckpt") if (out / name).is_file()]
    history = out / "history.csv"
    if history.is_file():
        with open(history) as f:
            if sum(1 for _ in f) > 1:  # a header alone: a run that failed before its first epoch ended
                found.append(history.name)
    return found


def remove_if_new_and_empty(out: Path | None, existed: bool) -> None:
    """A run that failed before writing anything leaves no empty --out folder behind."""
    try:
        if out is not None and not existed and out.is_dir() and not any(out.iterdir()):
            out.rmdir()
    except OSError:
        pass
