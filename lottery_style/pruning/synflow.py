"""SynFlow (Tanaka et al. 2020): data-free saliency and its iterative pruning at initialisation, pure tensor logic.

SynFlow's score of a weight is ``|θ| * dR/d|θ|`` where ``R = 1ᵀ (Π |W_l|) 1`` is
the output of the network with every weight replaced by its absolute value,
fed an all-ones input, in float64. Its conservation law (every layer of a
single-path, positively homogeneous network carries the same total score R)
is what keeps iterative pruning from emptying a layer.

Style-transfer networks are not positively homogeneous: instance
normalisation, AdaIN statistics and softmax attention are not. Following the
issue, each part's conv/linear chain is scored with those operations treated
as identity. With non-negative weights and an all-ones input every activation
is a non-negative, spatially constant map, so ReLU, max-pooling, nearest
upsampling and reflection padding are exactly identity too, and a conv acts on
it as the (out, in) matrix of its kernel's |W| summed over space. A part's
layers, in registration order (the forward order of these models), form one
chain while each layer's input width equals the previous one's output width;
a mismatch starts a new chain from an all-ones input (LST's covariance
``fc``). Parallel branches whose widths happen to match (SANet's query, key,
value, output convs) are thereby scored as one path: with softmax treated as
identity there is no other path through the query and key convs. Each chain's
scores are divided by its own R, so every layer of every chain carries a total
score of 1, the conservation law across chains, and a global ranking does not
favour the chain with the larger R.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

from lottery_style.pruning.masks import Masks
from lottery_style.pruning.pruner import Pruner

ITERATIONS = 100  # Tanaka et al. 2020, section 6: 100 pruning iterations


def _part(name: str) -> str:
    """Prunable weights are named ``<part>.<path>`` (encoder, transform, decoder)."""
    return name.split(".", 1)[0]


def linear_chains(weights: Mapping[str, Tensor]) -> list[list[str]]:
    """The chains of ``weights`` (in order): consecutive layers of one part whose widths connect."""
    chains: list[list[str]] = []
    for name, weight in weights.items():
        if chains:
            previous = chains[-1][-1]
            if _part(previous) == _part(name) and weights[previous].shape[0] == weight.shape[1]:
                chains[-1].append(name)
                continue
        chains.append([name])
    return chains


def _channel_matrix(weight: Tensor) -> Tensor:
    """The (out, in) matrix a conv or linear weight applies to a spatially constant input: summed over its kernel."""
    return weight.reshape(weight.shape[0], weight.shape[1], -1).sum(-1)


def synflow_scores(weights: Mapping[str, Tensor], masks: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Float64 SynFlow scores of the masked ``weights``, normalised per chain (see the module docstring)."""
    scores: dict[str, Tensor] = {}
    for chain in linear_chains(weights):
        absolute = {n: (weights[n].detach().double().abs() * masks[n].to(weights[n].device)).requires_grad_() for n in chain}
        signal = torch.ones(weights[chain[0]].shape[1], dtype=torch.float64, device=weights[chain[0]].device)
        for name in chain:
            signal = _channel_matrix(absolute[name]) @ signal
        flow = signal.sum()
        if flow == 0:  # a chain cut by an emptied layer carries nothing
            scores.update({n: torch.zeros_like(absolute[n]).detach() for n in chain})
            continue
        gradients = torch.autograd.grad(flow, [absolute[n] for n in chain])
        scores.update({n: (absolute[n] * g / flow).detach() for n, g in zip(chain, gradients)})
    return scores


def synflow_prune(
    weights: Mapping[str, Tensor],
    target_sparsity: float,
    layerwise: bool = False,
    iterations: int = ITERATIONS,
    *,
    tie_seed: int,
    pruner: Pruner | None = None,
) -> Masks:
    """SynFlow's iterative pruning from dense to exactly ``target_sparsity``: an exponential schedule.

    Iteration i of n keeps the fraction (1 - target)^(i/n) of the units
    (Tanaka et al. 2020, Algorithm 1), each time re-scoring the masked network.
    Every iteration breaks ties in the same order of positions, ``tie_seed``'s.
    ``pruner`` says what a unit is (a weight by default; a channel scores as
    the mean of its filter's scores); ``weights`` are the conv/linear weights.
    """
    pruner = pruner or Pruner()
    schedule = [1.0 - (1.0 - target_sparsity) ** (i / iterations) for i in range(1, iterations)] + [target_sparsity]
    masks = pruner.dense(weights)
    for sparsity in schedule:
        masks = pruner.by_scores(synflow_scores(weights, masks), masks, sparsity, layerwise, tie_seed=tie_seed)
    return masks
