"""The entry point: parse the flags, run the command, turn what ended it into one line and an exit status.

A mistake in what the user passed (a flag, a data file, an --out folder, a checkpoint) ends with one line,
`learnloop: error: ...`, and exit status 2; `--debug` (or `LEARNLOOP_DEBUG=1`) shows its traceback instead.
Anything else is a bug and keeps its traceback. Ctrl-C or SIGTERM stops `fit` after the current batch,
saves OUT/last.ckpt and exits 130 (SIGINT) or 143 (SIGTERM); `--resume` continues from there.
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import sys
import threading
from pathlib import Path

from ..errors import UserError
from ..signals import FitInterrupted
from . import evaluate, export, fit, lr_find, predict, startup
from .flags import USER_ERROR, Parser
from .output import one_line_warnings, print_error, silence_stdout
from .runs import default_out, remove_if_new_and_empty

# The commands, by name. Each module has NAME, `add_parser(commands)` (its subparser and flags: `flags.add_run_flags`
# for one that trains on DATA, `model_flags` for one that uses a trained model) and `run(args) -> exit status`, and
# raises UserError for a mistake in what was passed; a new command is its module and one entry here.
COMMANDS = {module.NAME: module for module in (fit, lr_find, predict, evaluate, export)}


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for `learnloop`."""
    parser = Parser(
        prog="learnloop",
        description="Train a CNN with learnloop's Learner. DATA is 'digits' (scikit-learn's bundled 8x8 "
        "digits), 'mnist' (an .npz with x_train, y_train, x_test, y_test: the file --data FILE, else "
        "mnist.npz in the folder $LEARNLOOP_DATA, else in ~/.cache/learnloop), or a folder of images laid out "
        "as ROOT/train/<label>/*.jpg and ROOT/val/<label>/*.jpg (JPEG, PNG, ...). predict, evaluate and export use "
        "the trained model: MODEL is the run folder (--out of fit) or its model.pt.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMANDS.values():
        module.add_parser(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `learnloop` command; returns the exit status."""
    latch = startup.START_UP
    try:  # before the latch is in, Python raises a Ctrl-C: one that lands while it is installed is caught here
        argv = sys.argv[1:] if argv is None else list(argv)
        if threading.current_thread() is threading.main_thread():
            latch.install()
        return _main(argv)
    except KeyboardInterrupt:  # before the latch was in, or while the flags were parsed: nothing has started
        pass
    except Exception:
        if latch.received is None or debugging("--debug" in (argv or [])):
            raise
    finally:
        latch.restore()
    return aborted()


def aborted() -> int:
    """Say that the command stopped before it started anything; the status of a Ctrl-C."""
    print("learnloop: aborted.", file=sys.stderr, flush=True)
    return 128 + signal.SIGINT


def debugging(flag: bool) -> bool:
    """`--debug` or LEARNLOOP_DEBUG: user errors keep their traceback."""
    return flag or os.environ.get("LEARNLOOP_DEBUG", "") not in ("", "0")


def _main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    debug = debugging(args.debug)
    training = hasattr(args, "dataset")  # fit, lr-find; predict, evaluate and export use a trained model
    if training:
        args.out = args.out or default_out(args.dataset)
    existed = getattr(args, "out", None) is not None and args.out.exists()
    with one_line_warnings():
        try:
            return COMMANDS[args.command].run(args)
        except UserError as e:
            if debug:
                raise
            remove_if_new_and_empty(getattr(args, "out", None), existed)
            print_error(str(e))
            return USER_ERROR
        except BrokenPipeError:  # stdout's reader has gone (`learnloop fit ... | head`): stop, as Unix tools do
            if debug:
                raise
            silence_stdout()
            print("learnloop: stopped: standard output was closed (the reader of its pipe ended).", file=sys.stderr)
            return 128 + signal.SIGPIPE
        except KeyboardInterrupt as e:  # FitInterrupted (a clean stop) or an abort
            if debug:
                raise
            print(f"learnloop: {interrupted(e, args, argv)}", file=sys.stderr, flush=True)
            return 128 + getattr(e, "signum", 2)  # 130 for SIGINT, 143 for SIGTERM, as a shell reports them
        except Exception:
            if debug or startup.START_UP.received is None:
                raise
            print(f"learnloop: {interrupted(KeyboardInterrupt(), args, argv)}", file=sys.stderr, flush=True)
            return 130  # a second Ctrl-C a library turned into another error (see startup.START_UP)


def interrupted(e: KeyboardInterrupt, args: argparse.Namespace, argv: list[str]) -> str:
    """The line an interrupted command prints: where it stopped and how to resume."""
    if args.command != "fit":
        return f"{getattr(e, 'signal_name', 'SIGINT')} stopped {args.command}; nothing was written."
    ckpt = e.checkpoint if isinstance(e, FitInterrupted) else args.out and Path(args.out) / "last.ckpt"
    what = e.describe() if isinstance(e, FitInterrupted) else "aborted."
    if ckpt is None or not Path(ckpt).is_file():
        return what
    if "--overwrite" in argv and Path(ckpt).stat().st_mtime < startup.STARTED_AT:  # the run this one was to replace
        return f"{what} The earlier run in {args.out} is untouched."
    again = [a for a in argv if a != "--overwrite"] + ([] if "--resume" in argv else ["--resume"])
    return f"{what} Resume with: {shlex.join(['learnloop', *again])}"


def entry() -> None:
    """The console script: `main`, then an exit that a late Ctrl-C can't turn into a silent kill."""
    try:
        status = main()
    except KeyboardInterrupt:  # one that landed on the way into `main`, before its own handling began
        status = aborted()
    # Everything is written; torch's teardown still takes up to a second, and a signal there would end the
    # process with no word and status -2 instead of this one.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_IGN)
    sys.exit(status)
