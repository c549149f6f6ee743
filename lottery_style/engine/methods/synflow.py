"""SynFlow (Tanaka et al. 2020, "Pruning neural networks without any data by iteratively conserving synaptic flow").

Data-free: the rewind point's weights alone decide the mask (no batch, no
model forward), by SynFlow's own iterative pruning at initialisation, 100
iterations on an exponential schedule up to each round's sparsity, global over
``pruning.scope``. How a style-transfer network, which is not positively
homogeneous, is scored is said in :mod:`lottery_style.pruning.synflow`.
"""

from __future__ import annotations

from typing import ClassVar

from lottery_style.engine.methods.at_init import PruningAtInitialisation, shuffled
from lottery_style.engine.methods.base import RoundInputs, register_method
from lottery_style.pruning.masks import Masks
from lottery_style.pruning.synflow import ITERATIONS, synflow_prune


@register_method("synflow")
class SynFlow(PruningAtInitialisation):
    """Iterative synaptic-flow pruning of the rewind point to the round's sparsity."""

    iterations: ClassVar[int] = ITERATIONS  # about 0.6 s each for AdaIN's 7M weights on one CPU core

    def next_masks(self, inputs: RoundInputs) -> Masks:
        weights = {name: w for name, w in inputs.scope_of(inputs.rewind_point).items() if w.dim() > 1}  # no biases
        return synflow_prune(
            weights, inputs.target, inputs.layerwise, self.iterations, tie_seed=inputs.tie_seed, pruner=inputs.pruner
        )


register_method("synflow_shuffled")(shuffled(SynFlow))
