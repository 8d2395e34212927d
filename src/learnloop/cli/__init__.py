"""The `learnloop` command: train, or find a learning rate, on digits, MNIST or an image folder; predict, evaluate
and export with a trained model.

One module per command (`fit.py`, `lr_find.py`, `predict.py`, `evaluate.py`, `export.py`), registered in
`app.COMMANDS`; the shared parts: `app.py` (entry point, exit statuses), `startup.py` (Ctrl-C during start-up),
`flags.py` (the parser and the flags of the commands that train on DATA), `config.py` (`RunConfig`, every setting
of a run), `output.py` (colour, one-line errors and warnings), `runs.py` (what a run folder may hold), `build.py`
(data, model and Learner from a `RunConfig`) and `model_flags.py` (MODEL and loading it, for the commands that use
one). Importing it imports no torch, so `learnloop --help` answers at once.
"""

from .app import build_parser, entry, main

__all__ = ["build_parser", "entry", "main"]
