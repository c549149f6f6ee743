"""The four rewinding modes as fits: which steps a round trains and on which LR schedule.

T is ``training.steps`` and k ``pruning.rewind_step``. Following open_lth,
weight rewinding to step k > 0 splits the dense round 0 at k (steps 0..k, then
k..T with a fresh optimizer) and every pruned round trains k..T from the
weights at k with a fresh optimizer: the dense model and its tickets differ
only in the mask, and see the same steps, batches and learning rates.
Renda et al. (2020) compare LR rewinding and fine-tuning with weight rewinding
at an equal retraining budget of T-k steps, so both train k..T too; fine-tuning
holds the LR where the dense training ended.
"""

from __future__ import annotations

from dataclasses import dataclass

from lottery_style.core.config import Rewind


@dataclass(frozen=True)
class Segment:
    """One fit: steps ``start``..``end`` of the stream, the LR schedule read at ``lr_from`` (+ step unless held)."""

    start: int
    end: int
    lr_from: int
    hold_lr: bool = False

    @property
    def steps(self) -> int:
        return self.end - self.start


def round_segments(rewind: Rewind, k: int, steps: int, index: int) -> list[Segment]:
    """The fits of round ``index``: round 0 trains 0..T (split at k for weight rewinding to step k > 0)."""
    if index == 0:
        if rewind == Rewind.step and k > 0:
            return [Segment(0, k, 0), Segment(k, steps, k)]
        return [Segment(0, steps, 0)]
    if rewind == Rewind.init:
        return [Segment(0, steps, 0)]
    if rewind == Rewind.finetune:
        return [Segment(k, steps, steps, hold_lr=True)]
    return [Segment(k, steps, k)]  # weight rewinding to step k, LR rewinding
