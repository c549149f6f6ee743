"""Training-speed options of a fit: channels-last memory format, ``torch.compile`` of the loss computation,
and keeping freed host memory for reuse.

The first two change how the step is computed, never what: the losses agree
with the eager NCHW step to float tolerance. The third changes only where
tensors live. ``bench/step_time.py`` measures them against the plain PyTorch
loop; docs/performance.md has the numbers that set the defaults
in ``TrainingConfig``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
import platform

import torch
from lightning.pytorch import Callback, LightningModule, Trainer

log = logging.getLogger(__name__)

# glibc mallopt parameters (malloc.h) and the values set: blocks up to 1 GiB come from the heap, and the
# heap is never trimmed, so a freed activation's pages are reused by the next step instead of given back.
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
HEAP_BLOCK_LIMIT = 1 << 30
NEVER_TRIM = (1 << 31) - 1


@functools.cache
def keep_freed_memory_in_heap() -> bool:
    """Make glibc's malloc keep freed memory for reuse; True if applied, False where malloc is not glibc's.

    PyTorch's CPU allocator caches nothing: every tensor goes to malloc, which
    serves blocks above its mmap threshold (at most 32 MiB) with fresh
    ``mmap`` pages and unmaps them when the tensor dies. A training step at
    batch 8 / 256 px frees and re-maps its activations every step: two million
    page faults per step, and the step takes 1.5x as long as with the pages kept.
    With the heap holding them instead, the process keeps its peak footprint
    (it does not shrink between steps) and the faults are gone. This is a
    process-wide setting, deliberately: it is what a long training process wants,
    so it is applied once per process however many fits (IMP rounds) ask for it.
    """
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        log.debug("keep_freed_memory: malloc is not glibc's here, left unchanged")
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    applied = libc.mallopt(M_MMAP_THRESHOLD, HEAP_BLOCK_LIMIT) == 1 and libc.mallopt(M_TRIM_THRESHOLD, NEVER_TRIM) == 1
    if not applied:
        log.warning("glibc's mallopt refused the thresholds: freed memory is returned to the OS as usual")
    return applied


def to_channels_last(module: torch.nn.Module, channels_last: bool) -> None:
    """``training.channels_last``: the module's 4-D tensors converted to NHWC in place. Training evaluates a round
    in the format its fit left, so a later evaluation of the stored round converts too, to sum alike."""
    if channels_last:
        module.to(memory_format=torch.channels_last)


class SpeedOptions(Callback):
    """Applies the options when the fit is set up, before the optimizer exists, and undoes the compile at its end.

    Channels-last converts the 4-D parameters in place (the Parameter objects,
    hence masks and optimizer links, stay the same). The compiled ``losses``
    shadows the method for the training steps only: it is removed at teardown,
    so evaluation (no grad, other image sizes) runs eagerly instead of
    recompiling. The compiled code stays cached for the same module, so later
    IMP rounds in the same process do not compile again. Keeping freed memory
    is process-wide and stays on after the fit (evaluation profits too).
    """

    def __init__(self, channels_last: bool = False, compile: bool = False, keep_freed_memory: bool = False):
        self.channels_last = channels_last
        self.compile = compile
        self.keep_freed_memory = keep_freed_memory

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if self.keep_freed_memory:
            keep_freed_memory_in_heap()
        to_channels_last(pl_module, self.channels_last)
        if self.compile:
            pl_module.losses = torch.compile(type(pl_module).losses.__get__(pl_module))

    def teardown(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if self.compile:
            pl_module.__dict__.pop("losses", None)
