"""The resumable checkpoints of a fit, without the one at its last step.

A round's checkpoints exist only to resume an interrupted fit; the round's
record then deletes them. A checkpoint at the fit's last step would be written
(model, optimizer, masks: ~0.1-0.4 s at the quickstart's size, more at paper
scale) just before that deletion: a crash between the fit's end and the round's
DONE marker resumes from the previous checkpoint instead and, the stream and the
per-step seeds being functions of the step, trains those steps again to the
same weights (docs/performance.md, Between fits).
"""

from __future__ import annotations

from typing import Any

from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint


class ResumeCheckpoint(ModelCheckpoint):
    """``ModelCheckpoint`` that skips the save due at the fit's last step (``max_steps``), and the
    ``last.ckpt`` Lightning otherwise writes when a fit ends without having saved one."""

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, *args: Any, **kwargs: Any) -> None:
        if trainer.global_step >= trainer.max_steps:
            return
        super().on_train_batch_end(trainer, pl_module, *args, **kwargs)

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        return
