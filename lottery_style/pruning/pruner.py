"""What a mask unit is (``pruning.granularity``): the rules of :mod:`.masks` at one granularity.

Every method asks its :class:`Pruner` for masks, never the functions of
:mod:`.masks` directly, so that IMP, its controls, one-shot, SNIP, SynFlow and
early-bird run the same protocol whatever a unit is. This class is the weight
granularity (a unit is one weight, the paper's); :class:`~lottery_style.pruning.channels.ChannelPruner`
is the channel granularity (a unit is a conv's output channel: its filter and its bias).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from lottery_style.pruning.masks import (
    Masks,
    dense_masks,
    kept_counts,
    magnitude_prune,
    overall_sparsity,
    random_prune_like,
    score_prune,
)


class Pruner:
    """Weight granularity: each rule of :mod:`.masks` as it is."""

    def dense(self, weights: Mapping[str, Tensor]) -> Masks:
        """Nothing pruned: the masks of round 0 over ``weights`` (the scope's)."""
        return dense_masks(weights)

    def magnitude(
        self, weights: Mapping[str, Tensor], masks: Masks, target: float, layerwise: bool, *, tie_seed: int
    ) -> Masks:
        """The smallest survivors pruned until ``target`` of the units are (IMP's and one-shot's rule)."""
        return magnitude_prune(weights, masks, target, layerwise, tie_seed=tie_seed)

    def by_scores(
        self, scores: Mapping[str, Tensor], masks: Masks, target: float, layerwise: bool, *, tie_seed: int
    ) -> Masks:
        """The lowest-scoring survivors pruned until ``target`` of the units are (SNIP, SynFlow: per-weight scores)."""
        return score_prune(scores, masks, target, layerwise, tie_seed=tie_seed)

    def counts(self, masks: Masks) -> dict[str, int]:
        """Surviving units per layer: what the random-pruning control keeps."""
        return kept_counts(masks)

    def random_like(self, counts: Mapping[str, int], within: Masks, generator: torch.Generator) -> Masks:
        """Random survivors of ``within`` with ``counts`` units per layer."""
        return random_prune_like(counts, within, generator)

    def shuffle(self, masks: Masks, generator: torch.Generator) -> Masks:
        """Each layer's surviving units at random positions of the layer (the shuffled control)."""
        return self.random_like(self.counts(masks), self.dense(masks), generator)

    def units(self, masks: Masks) -> Masks:
        """One entry per unit: what a distance between two masks counts (early-bird's Hamming distance)."""
        return masks

    def sparsity(self, masks: Masks) -> float:
        """The fraction of prunable units pruned: what the schedule's rate counts."""
        return overall_sparsity(masks)

    def record(self, masks: Masks) -> dict[str, Any]:
        """What a round's ``metrics.json`` says of its masks beyond ``sparsity``."""
        return {"granularity": "weight", "weight_sparsity": overall_sparsity(masks)}

    def slimmed(self, state: Mapping[str, Tensor], masks: Masks) -> dict[str, Tensor] | None:
        """The weights of the physically slim model of ``state`` under ``masks``, or None when masking narrows
        nothing: unstructured zeros remove no kernel work."""
        return None
