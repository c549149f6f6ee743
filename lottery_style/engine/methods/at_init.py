"""What pruning at initialisation shares: one shot to each round's sparsity from the rewind point, and its shuffled control.

SNIP and SynFlow score the weights before any training (at the rewind point:
initialisation for ``rewind=init``, step k for ``rewind=step``) and prune them
straight to each round's sparsity, each round on its own like the one-shot
control; the survivors then train from the rewind point like an IMP round.
As branches of an IMP run (``pruning.branches=[snip,synflow]``) they reuse its
dense round 0, rewind point and schedule.

Frankle et al. (2021, "Pruning neural networks at initialization: why are we
missing the mark?") found these methods no worse after shuffling each
layer's mask: what they find is per-layer proportions, not positions. The
``<name>_shuffled`` control is that test: the method's mask with each layer's
survivors moved to random positions of the layer (its count kept), drawn from
the round's control generator.
"""

from __future__ import annotations

from lottery_style.engine.methods.base import MethodStrategy, RoundInputs
from lottery_style.pruning.masks import Masks


class PruningAtInitialisation(MethodStrategy):
    """A method that ranks the rewind point's weights; subclasses say how (:meth:`next_masks`)."""

    accepts_source = True
    weight_rewinding_only = True


def shuffled(method: type[PruningAtInitialisation]) -> type[PruningAtInitialisation]:
    """The layer-wise shuffled control of ``method`` (register it as ``<name>_shuffled``)."""

    class Shuffled(method):  # type: ignore[valid-type,misc]
        def next_masks(self, inputs: RoundInputs) -> Masks:
            return inputs.pruner.shuffle(super().next_masks(inputs), inputs.generator)

    Shuffled.__name__ = Shuffled.__qualname__ = f"{method.__name__}Shuffled"
    Shuffled.__doc__ = f"{method.__name__}'s per-layer counts at random positions within each layer (Frankle et al. 2021)."
    return Shuffled
