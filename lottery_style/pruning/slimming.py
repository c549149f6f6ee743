"""A channel ticket made physically slim: each conv narrowed to the channels the masks keep.

A pruned channel (filter and bias masked) outputs an exact zero, and every
conv that reads it through channel-wise operations (the layout's ``links``)
multiplies that zero by its input slice. Cutting the channel's filter and
bias and those input slices out leaves a smaller dense network that computes
the same output, up to the order of float sums. :func:`slim_state` makes
that network's weights from the ticket's; :func:`narrow_convs` gives a model
the narrower conv shapes they load into. What a slimmed copy would keep is
:meth:`~lottery_style.pruning.channels.ChannelLayout.kept_channels`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from torch import Tensor, nn

if TYPE_CHECKING:  # the layout's module makes its slim states with this one's
    from lottery_style.pruning.channels import ChannelLayout


def slim_state(state: Mapping[str, Tensor], layout: ChannelLayout, masks: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """``state`` with each conv's pruned output channels (filter and bias) and dead input slices cut out."""
    out = dict(state)
    kept = layout.channels(masks)
    dead = layout.dead_inputs(kept)
    for name in layout.convs:
        weight = out[name]
        if name in kept:
            rows = kept[name].to(weight.device)
            weight = weight[rows]
            if name in layout.biases:
                out[layout.biases[name]] = out[layout.biases[name]][rows]
        if name in dead:
            weight = weight[:, ~dead[name].to(weight.device)]
        out[name] = weight.contiguous()
    return out


def narrow_convs(model: nn.Module, channels: Mapping[str, tuple[int, int]]) -> None:
    """Give each conv named in ``channels`` (by weight name) that many output and input channels, weights unset.

    Only the shapes change: the modules between convs (ReLU, padding,
    upsampling, pooling, AdaIN and attention) work on any channel count, so
    the forward runs unchanged on the narrower tensors.
    """
    for name, (out, into) in channels.items():
        conv = model.get_submodule(name.removesuffix(".weight"))
        if not isinstance(conv, nn.Conv2d) or not name.endswith(".weight"):
            raise ValueError(f"slim config names {name}: expected the weight of a conv")
        if conv.groups != 1:
            raise ValueError(f"slim config names {name}, a grouped conv: only plain convs are narrowed")
        if not (0 < out <= conv.out_channels and 0 < into <= conv.in_channels):
            raise ValueError(
                f"slim config gives {name} {out} out and {into} in channels: expected 1..{conv.out_channels} out "
                f"and 1..{conv.in_channels} in"
            )
        like = conv.weight
        conv.weight = nn.Parameter(like.new_empty(out, into, *like.shape[2:]), requires_grad=like.requires_grad)
        if conv.bias is not None:
            conv.bias = nn.Parameter(conv.bias.new_empty(out), requires_grad=conv.bias.requires_grad)
        conv.out_channels, conv.in_channels = out, into
