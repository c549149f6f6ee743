"""Random re-initialisation, the paper's "random tickets": IMP's mask with fresh weights (a branch of an IMP run).

The evidence that IMP's *initial values* matter: every part starts the round
from the same point as the IMP ticket (the rewind point), and only the pruned
scope gets freshly initialised weights. ``random_reinit_own`` is the
self-contained variant: the mask from its own magnitude ranking of its own
re-initialised training, no IMP run needed.
"""

from __future__ import annotations

from lottery_style.engine.methods.base import BranchOfImp, MethodStrategy, RoundInputs, State, register_method
from lottery_style.pruning.masks import Masks


class _FreshScope(MethodStrategy):
    def start_weights(self, inputs: RoundInputs) -> State:
        return {**super().start_weights(inputs), **inputs.fresh_state()}


@register_method("random_reinit")
class RandomReinitialisation(_FreshScope, BranchOfImp):
    def next_masks(self, inputs: RoundInputs) -> Masks:
        return self.imp_masks(inputs)


@register_method("random_reinit_own")
class RandomReinitialisationOwnMask(_FreshScope):
    def next_masks(self, inputs: RoundInputs) -> Masks:
        return inputs.own_magnitude_masks()
