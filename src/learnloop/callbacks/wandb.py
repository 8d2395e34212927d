"""Weights & Biases tracking: a fit's hyper-parameters as the run's config, every `learn.history` row per epoch,
optionally the training loss every n batches, and how the run ended.

wandb is optional (`pip install "learnloop[wandb]"`) and imported only when a fit with `WandbCallback` starts.
`WANDB_MODE=offline` (or `mode="offline"`) writes the run under `./wandb/` with no network; `wandb sync` uploads it.
"""

from __future__ import annotations

from typing import Any

from .tracking import TrackerCallback, run_params

_MISSING = "WandbCallback needs wandb: pip install 'learnloop[wandb]'."


class WandbCallback(TrackerCallback):
    """Logs a fit to a W&B run: `config` (the fit's hyper-parameters, `tracking.run_params`, and yours) at the start,
    each epoch's `learn.history` row (W&B x-axis `epoch`), with `log_every_n_batches=n` the training loss every n-th
    batch (x-axis `train_iter`), and at the end the exit code (0; 1 when the fit raised; 255 on Ctrl-C).

    `init_kwargs` go to `wandb.init` (`project`, `entity`, `name`, `dir`, `mode`, `tags`, ...). Inside your own
    `wandb.init()` run it logs to that run and leaves finishing it to you. A fit resumed from a `Checkpoint` continues
    the W&B run the checkpoint names (`resume="allow"` with its id). Rank 0 alone logs under torchrun; `lr_find`'s
    trial fit logs nothing.
    """

    def __init__(self, config: dict[str, Any] | None = None, log_every_n_batches: int | None = None,
                 **init_kwargs: Any):
        super().__init__(log_every_n_batches, "wandb", _MISSING)
        self.config, self.init_kwargs = dict(config or {}), init_kwargs
        self.run: Any = None

    # -- events ------------------------------------------------------------------------------
    def before_fit(self):
        super().before_fit()
        self.run = None

    def before_epoch(self):
        if self.run is None:
            self._start_run()

    def after_epoch(self):
        if self.run is not None:
            self._log_new_rows()

    def after_fit(self):
        if self.run is None:
            return
        error = self.error
        try:
            self._log_new_rows()  # a row recorded just before an exception skipped this epoch's after_epoch
        finally:
            if self.owns_run:
                self.run.finish(exit_code=0 if error is None else 255 if isinstance(error, KeyboardInterrupt) else 1)
            self.run = None

    # -- W&B ---------------------------------------------------------------------------------
    def _start_run(self) -> None:
        """Open this fit's run: the checkpoint's when resuming, else the user's active run, else a new one."""
        try:
            import wandb
        except ImportError as e:
            raise ImportError(f"{_MISSING} ({e})") from e
        self.n_logged = len(self.history)  # a resumed fit's earlier epochs are logged already
        config = {**run_params(self.learn), **self.config}
        if wandb.run is not None and self.run_id is None:  # the user's own run: they finish it
            self.run, self.owns_run = wandb.run, False
            self.run.config.update(config, allow_val_change=True)
        else:
            resume = {"id": self.run_id, "resume": "allow"} if self.run_id else {}
            self.run, self.owns_run = wandb.init(**{**self.init_kwargs, **resume, "config": config}), True
        self.run_id = self.run.id
        self.run.define_metric("epoch")
        self.run.define_metric("train_iter")
        self.run.define_metric("batch_loss", step_metric="train_iter")
        for key in ("train_loss", "valid_*", "lr", "time"):
            self.run.define_metric(key, step_metric="epoch")

    def _log_new_rows(self) -> None:
        """The batch losses so far, then each `learn.history` row not logged yet."""
        for step, loss in self.take_batch_losses():
            self.run.log({"batch_loss": loss, "train_iter": step})
        for row in self.take_new_rows():
            self.run.log(dict(row))
