"""One-shot magnitude pruning (the paper's OMP control): a branch of the dense round 0."""

from __future__ import annotations

from lottery_style.core.config import Rewind
from lottery_style.engine.methods.base import MethodStrategy, RoundInputs, State, register_method
from lottery_style.pruning.masks import Masks


@register_method("oneshot")
class OneShotMagnitudePruning(MethodStrategy):
    """Each round prunes the dense round's trained weights once to its sparsity, independently of other rounds.

    Without weight rewinding the survivors are the dense trained weights
    (fine-tuning or LR rewinding of the dense model), never the previous round's.
    """

    accepts_source = True

    def next_masks(self, inputs: RoundInputs) -> Masks:
        dense = inputs.scope_of(inputs.dense_weights)
        pruner = inputs.pruner
        return pruner.magnitude(dense, pruner.dense(dense), inputs.target, inputs.layerwise, tie_seed=inputs.tie_seed)

    def start_weights(self, inputs: RoundInputs) -> State:
        if inputs.rewind in (Rewind.init, Rewind.step):
            return inputs.rewind_point
        return inputs.dense_weights
