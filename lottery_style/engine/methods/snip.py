"""SNIP (Lee et al. 2019, "SNIP: single-shot network pruning based on connection sensitivity").

Connection sensitivity: the loss's derivative with respect to a multiplicative
mask at 1, which is ``g·θ``; SNIP keeps the weights with the largest ``|g·θ|``
on one mini-batch at initialisation, in one shot. Here the mini-batch is the
one the run's training stream gives at the rewind point (the replicate's own
data, identical on every DDP rank), the loss is the model's weighted training
loss, and the ranking is global over ``pruning.scope`` (``pruning.layerwise``
ranks each layer alone). Per-step random numbers of the model (MANet, MCCNet,
AdaAttN) are drawn from the round's control seed, so the mask is reproducible.
"""

from __future__ import annotations

import torch

from lottery_style.engine.methods.at_init import PruningAtInitialisation, shuffled
from lottery_style.engine.methods.base import RoundInputs, State, register_method
from lottery_style.pruning.masks import Masks


def snip_scores(model: torch.nn.Module, batch: dict[str, torch.Tensor], names: list[str], seed: int) -> State:
    """``|g·θ|`` of the named parameters for the model's weighted loss on ``batch`` (``.grad`` left untouched)."""
    params = dict(model.named_parameters())
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        loss = model.weighted_loss(model.losses(batch["content"], batch["style"]).terms)
        gradients = torch.autograd.grad(loss, [params[name] for name in names])
    return {name: (g * params[name]).abs().detach() for name, g in zip(names, gradients)}


@register_method("snip")
class Snip(PruningAtInitialisation):
    """One shot to the round's sparsity by connection sensitivity at the rewind point."""

    def next_masks(self, inputs: RoundInputs) -> Masks:
        assert inputs.rewind_model is not None and inputs.training_batch is not None, "snip scores the rewind point"
        names = list(inputs.scope_of(inputs.rewind_point))
        scores = snip_scores(inputs.rewind_model(), inputs.training_batch(), names, inputs.generator.initial_seed())
        pruner = inputs.pruner
        return pruner.by_scores(scores, pruner.dense(scores), inputs.target, inputs.layerwise, tie_seed=inputs.tie_seed)


register_method("snip_shuffled")(shuffled(Snip))
