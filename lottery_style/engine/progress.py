"""The training progress bar: which run, which round at which sparsity, and where in the schedule it is.

Lightning's bar reads "Epoch 0/-2": every fit here is one epoch of ``max_steps``
steps (``max_epochs=-1``), and its step count restarts at 0 in every fit, though a
round under ``pruning.rewind=step`` trains steps k..T of the schedule. This bar
names the run and the round instead, and counts the schedule's step (the step of
round 0 that the current step corresponds to) out of ``training.steps``.
"""

from __future__ import annotations

from typing import Any

from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import RichProgressBar


def round_description(run: str, index: int, last_round: int, sparsity: float) -> str:
    return f"{run} round {index}/{last_round} sparsity {100 * sparsity:.1f}%"


class RoundProgressBar(RichProgressBar):
    """Rich's bar for one fit of a round: the description names the round, the ``step`` field counts the schedule."""

    def __init__(self, description: str, first_step: int, total_steps: int, **kwargs: Any):
        super().__init__(**kwargs)
        self.description = description
        self.first_step = first_step  # the schedule step this fit starts at (k for a round trained k..T)
        self.total_steps = total_steps

    def _get_train_description(self, current_epoch: int) -> str:
        return self.description

    def schedule_step(self, trainer: Trainer) -> str:
        return f"{self.first_step + trainer.global_step}/{self.total_steps}"

    def get_metrics(self, trainer: Trainer, pl_module: LightningModule) -> dict[str, Any]:
        """The schedule step, then the module's bar metrics; Lightning's ``v_num`` (the logger's version) says nothing here."""
        metrics = super().get_metrics(trainer, pl_module)
        metrics.pop("v_num", None)
        return {"step": self.schedule_step(trainer), **metrics}
