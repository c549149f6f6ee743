"""Random pruning: IMP's per-layer counts at random positions (a branch of an IMP run).

The evidence that IMP's *positions* matter: the same number of weights kept
in every layer, chosen at random, trained from the same starting point.
``random_prune_own`` is the self-contained variant: counts from its own
magnitude ranking of its own trained weights, no IMP run needed.
"""

from __future__ import annotations

from lottery_style.engine.methods.base import BranchOfImp, MethodStrategy, RoundInputs, register_method
from lottery_style.pruning.masks import Masks


def _random_positions(counts: dict[str, int], inputs: RoundInputs) -> Masks:
    """Random masks nested in the previous round's, with ``counts`` survivors per layer."""
    within = {name: mask.cpu() for name, mask in inputs.previous_masks.items()}
    return inputs.pruner.random_like(counts, within, inputs.generator)


@register_method("random_prune")
class RandomPruning(BranchOfImp):
    def next_masks(self, inputs: RoundInputs) -> Masks:
        return _random_positions(inputs.pruner.counts(self.imp_masks(inputs)), inputs)


@register_method("random_prune_own")
class RandomPruningOwnCounts(MethodStrategy):
    def next_masks(self, inputs: RoundInputs) -> Masks:
        return _random_positions(inputs.pruner.counts(inputs.own_magnitude_masks()), inputs)
