"""A run's :class:`~lottery_style.pruning.pruner.Pruner`: ``pruning.granularity`` applied to its model.

The pruning rules know nothing of architectures; what channel pruning must
know of one (which convs exist, which are fixed, which read which) comes from
the model (``fixed_channels``, ``channel_links``) and is handed over here as
a :class:`~lottery_style.pruning.channels.ChannelLayout`.
"""

from __future__ import annotations

from collections.abc import Iterable

from omegaconf import DictConfig
from torch import nn

from lottery_style.core.config import Granularity
from lottery_style.models.base import StyleTransferModule
from lottery_style.pruning.channels import ChannelLayout, ChannelPruner
from lottery_style.pruning.masks import Masks
from lottery_style.pruning.pruner import Pruner


def channel_layout(model: StyleTransferModule, scope: Iterable[str]) -> ChannelLayout:
    """The model's prunable convs at channel granularity, ``scope`` (weight names) the pruned ones."""
    named = dict(model.named_parameters())
    convs = {name: tuple(p.shape) for group in model.prunable_weights().values() for name, p in group.items()}
    scope = tuple(name for name in convs if name in set(scope))
    biases = {name: f"{name[: -len('weight')]}bias" for name in convs}
    biases = {weight: bias for weight, bias in biases.items() if bias in named}
    return ChannelLayout(convs, scope, biases, frozenset(model.fixed_channels()) & set(scope), model.channel_links())


def run_pruner(cfg: DictConfig, model: StyleTransferModule, scope: Iterable[str]) -> Pruner:
    """The pruner of a run of ``cfg`` on ``model`` over the scope's weight names."""
    if Granularity(cfg.pruning.granularity) is Granularity.weight:
        return Pruner()
    return ChannelPruner(channel_layout(model, scope))


def masked_parameters(model: nn.Module, masks: Masks) -> dict[str, nn.Parameter]:
    """The parameters ``masks`` name (weights, and biases at channel granularity)."""
    named = dict(model.named_parameters())
    return {name: named[name] for name in masks}
