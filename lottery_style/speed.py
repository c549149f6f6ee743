"""Training-speed options of a fit: channels-last memory format and ``torch.compile`` of the loss computation.

Both change how the step is computed, never what: the losses agree with the
eager NCHW step to float tolerance. ``bench/step_time.py`` measures them
against the plain PyTorch loop; the README's Performance section has the
numbers that set the defaults in ``TrainingConfig``.
"""

from __future__ import annotations

import torch
from lightning.pytorch import Callback, LightningModule, Trainer


class SpeedOptions(Callback):
    """Applies the options when the fit is set up, before the optimizer exists, and undoes the compile at its end.

    Channels-last converts the 4-D parameters in place (the Parameter objects,
    hence masks and optimizer links, stay the same). The compiled ``losses``
    shadows the method for the training steps only: it is removed at teardown,
    so evaluation (no grad, other image sizes) runs eagerly instead of
    recompiling. The compiled code stays cached for the same module, so later
    IMP rounds in the same process do not compile again.
    """

    def __init__(self, channels_last: bool = False, compile: bool = False):
        self.channels_last = channels_last
        self.compile = compile

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if self.channels_last:
            pl_module.to(memory_format=torch.channels_last)
        if self.compile:
            pl_module.losses = torch.compile(type(pl_module).losses.__get__(pl_module))

    def teardown(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if self.compile:
            pl_module.__dict__.pop("losses", None)
