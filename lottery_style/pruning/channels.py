"""Channel granularity (``pruning.granularity=channel``): a mask unit is one output channel of a conv.

A pruned channel is its whole filter *and* its bias entry, so the conv writes
an exact zero there, and keeps writing it after any optimizer step (the masks
cover both). A channel ticket is still a masked dense network; what it buys is
that a slimmed copy can drop the channel, and with it the slices of the
following convs that read it.

Scores. A channel's score is the sum of its filter's per-weight scores: for
magnitude the filter's L1 norm (Li et al. 2017, "Pruning Filters for
Efficient ConvNets"), for SNIP and SynFlow the sum of their per-weight
saliencies. The layer-wise ranking (``pruning.layerwise=true``) ranks these
within each layer: exactly Li et al.'s. The global ranking first divides each
layer's scores by their mean over the layer's surviving channels. Raw sums
are not comparable across layers: a filter's L1 norm grows with its fan-in,
and PyTorch's initialisation scales weights by 1/sqrt(fan-in), so one layer's
filters can all sit below another's; on AdaIN four steps from initialisation the per-weight mean
ranking emptied the 512-in decoder conv by 36% channel sparsity, which cuts the
network. Normalised, a channel is ranked by how it compares with its own
layer's channels, and the global pool decides how many each layer loses.

Counting. The schedule's rate counts channels: the unit of pruning is what the
rate removes, so "20% per round" prunes a fifth of the surviving prunable
channels, the channels of the architecture's fixed convs (the RGB output,
residual and attention pairs: ``fixed_channels`` of each model) being no
units at all. Each round also records the weight sparsity, which counts the
pruned filters and biases plus the input slices of the following convs that
read a pruned (all-zero) channel and are thereby dead.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from lottery_style.core.config import Granularity
from lottery_style.pruning.masks import Masks, _check_matching, _prune_by, random_prune_like
from lottery_style.pruning.pruner import Pruner
from lottery_style.pruning.slimming import slim_state


@dataclass(frozen=True)
class ChannelLayout:
    """What channel pruning knows of a model: its convs, which of them it prunes, and who reads whom.

    ``convs``: every prunable conv's weight name and shape; ``scope``: those
    whose channels are units (pruning.scope's, model order); ``biases``: the
    bias name of each conv that has one; ``fixed``: scope convs whose channels
    are never pruned; ``links``: for a conv, the convs whose input channels are
    its output channels (the model's ``channel_links``).
    """

    convs: dict[str, tuple[int, ...]]
    scope: tuple[str, ...]
    biases: dict[str, str] = field(default_factory=dict)
    fixed: frozenset[str] = frozenset()
    links: dict[str, list[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        flat = [name for name in self.scope if len(self.convs[name]) != 4]
        if flat:
            raise ValueError(f"channel pruning prunes conv output channels: {flat} are not conv weights")
        for source, readers in self.links.items():
            for reader in readers:
                if source in self.convs and reader in self.convs and self.convs[reader][1] != self.convs[source][0]:
                    raise ValueError(
                        f"{reader} reads {self.convs[reader][1]} channels: {source} writes {self.convs[source][0]}"
                    )

    @property
    def pool(self) -> list[str]:
        """The scope's convs whose channels are ranked and pruned."""
        return [name for name in self.scope if name not in self.fixed]

    def channels(self, masks: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Each scope conv's surviving output channels, ``[out]`` bool (a channel survives unless its filter is gone)."""
        return {name: masks[name].reshape(masks[name].shape[0], -1).any(1) for name in self.scope}

    def masks(self, channels: Mapping[str, Tensor]) -> Masks:
        """The parameter masks of channel masks: each conv's filter and bias follow its channel."""
        out: Masks = {}
        for name in self.scope:
            kept = channels[name]
            out[name] = kept.view(-1, 1, 1, 1).expand(self.convs[name]).clone()
            if name in self.biases:
                out[self.biases[name]] = kept.clone()
        return out

    def dead_inputs(self, channels: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Each conv's input channels that read a pruned channel, ``[in]`` bool, for convs that read a scope conv."""
        dead: dict[str, Tensor] = {}
        for source in self.scope:
            for reader in self.links.get(source, []):
                if reader in self.convs:
                    pruned = ~channels[source].cpu()
                    dead[reader] = dead[reader] | pruned if reader in dead else pruned
        return dead

    def kept_channels(self, masks: Mapping[str, Tensor]) -> dict[str, tuple[int, int]]:
        """(kept output, kept input) channels of every conv: what a slimmed copy would have."""
        channels = self.channels(masks)
        dead = self.dead_inputs(channels)
        kept = {}
        for name, shape in self.convs.items():
            out = int(channels[name].count_nonzero()) if name in channels else shape[0]
            kept[name] = (out, shape[1] - (int(dead[name].count_nonzero()) if name in dead else 0))
        return kept

    def weight_sparsity(self, masks: Mapping[str, Tensor]) -> float:
        """The pruned fraction of the scope's conv weights and biases: pruned filters and biases, and the slices of
        scope convs that read a pruned channel."""
        dead = self.dead_inputs(self.channels(masks))
        total = kept = 0
        for name in self.scope:
            alive = masks[name].cpu()
            if name in dead:
                alive = alive & ~dead[name].view(1, -1, 1, 1)
            total += alive.numel()
            kept += int(alive.count_nonzero())
            if name in self.biases:
                total += self.convs[name][0]
                kept += int(masks[self.biases[name]].count_nonzero())
        return 1.0 - kept / total if total else 0.0


def _per_layer(scores: Tensor, alive: Tensor) -> Tensor:
    """Channel scores over their mean among the layer's survivors (as they are when that mean is 0)."""
    mean = scores[alive].mean() if bool(alive.any()) else scores.new_zeros(())
    return scores / mean if mean > 0 else scores


class ChannelPruner(Pruner):
    """Channel granularity: the rules of :class:`Pruner` on channel masks (see the module docstring)."""

    def __init__(self, layout: ChannelLayout):
        self.layout = layout

    def _checked(self, masks: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """The channel masks of ``masks``, which must be exactly this layout's filter and bias masks."""
        _check_matching(masks, self.layout.masks(self.dense_channels()), "channel masks")
        channels = self.layout.channels(masks)
        expected = self.layout.masks(channels)
        partial = [name for name in expected if not torch.equal(expected[name].cpu(), masks[name].cpu())]
        if partial:
            raise ValueError(f"masks of {partial[:3]} are not whole channels (filter and bias together)")
        return channels

    def units(self, masks: Masks) -> Masks:
        """Each scope conv's channel mask: early-bird's distance counts channels (You et al. 2020), not filter
        weights, so a wide filter weighs no more than a narrow one."""
        return self.layout.channels(masks)

    def dense_channels(self) -> dict[str, Tensor]:
        return {name: torch.ones(self.layout.convs[name][0], dtype=torch.bool) for name in self.layout.scope}

    def dense(self, weights: Mapping[str, Tensor]) -> Masks:
        return self.layout.masks(self.dense_channels())

    def magnitude(
        self, weights: Mapping[str, Tensor], masks: Masks, target: float, layerwise: bool, *, tie_seed: int
    ) -> Masks:
        """Li et al.'s filter L1 norm (normalised per layer for the global ranking: the module docstring says why)."""
        absolute = {name: weights[name].detach().abs() for name in self.layout.pool}
        return self.by_scores(absolute, masks, target, layerwise, tie_seed=tie_seed)

    def by_scores(
        self, scores: Mapping[str, Tensor], masks: Masks, target: float, layerwise: bool, *, tie_seed: int
    ) -> Masks:
        """Each channel scored by the sum of its filter's per-weight scores over its layer's mean; the lowest pruned."""
        channels = self._checked(masks)
        pool = self.layout.pool
        if not pool:
            if target > 0:
                raise ValueError(f"no channel can be pruned to sparsity {target}: every conv in scope is fixed")
            return self.layout.masks(channels)
        sums = {name: scores[name].detach().reshape(scores[name].shape[0], -1).sum(1) for name in pool}
        alive = {name: channels[name].to(sums[name].device) for name in pool}
        ranked = {name: _per_layer(sums[name], alive[name]) for name in pool}
        pruned = _prune_by(ranked, alive, target, layerwise=layerwise, by_magnitude=False, tie_seed=tie_seed)
        return self.layout.masks({**channels, **{name: m.cpu() for name, m in pruned.items()}})

    def counts(self, masks: Masks) -> dict[str, int]:
        """Surviving channels per conv."""
        return {name: int(kept.count_nonzero()) for name, kept in self._checked(masks).items()}

    def random_like(self, counts: Mapping[str, int], within: Masks, generator: torch.Generator) -> Masks:
        """Random channels of ``within``'s survivors, ``counts`` per conv."""
        return self.layout.masks(random_prune_like(counts, self._checked(within), generator))

    def record(self, masks: Masks) -> dict[str, Any]:
        """Channel sparsity (the rate's unit) and weight sparsity (with the dead input slices)."""
        return {
            "granularity": Granularity.channel.value,
            "channel_sparsity": self.sparsity(masks),
            "weight_sparsity": self.layout.weight_sparsity(masks),
            "channels_kept": {name: int(kept.count_nonzero()) for name, kept in self._checked(masks).items()},
        }

    def slimmed(self, state: Mapping[str, Tensor], masks: Masks) -> dict[str, Tensor]:
        """``state`` with the pruned channels and the input slices that read them cut out (:mod:`.slimming`)."""
        self._checked(masks)
        return slim_state(state, self.layout, masks)

    def sparsity(self, masks: Masks) -> float:
        """Pruned channels over the pool's channels (the fixed convs' channels are no units)."""
        channels = self._checked(masks)
        total = sum(channels[name].numel() for name in self.layout.pool)
        kept = sum(int(channels[name].count_nonzero()) for name in self.layout.pool)
        return 1.0 - kept / total if total else 0.0
