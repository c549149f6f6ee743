"""What a ticket costs to run, recorded in every round's ``metrics.json``.

``flops``: the forward FLOPs of one stylization (one content and one style
image of ``data.eval_size`` pixels square) as PyTorch's own
:class:`torch.utils.flop_counter.FlopCounterMode` counts them, of the model as
it runs: a masked ticket runs every dense kernel, zeros included, so its count
is the dense model's. ``flops_kept``: the same count with every conv restricted
to its kept output channels and the input channels that do not read a pruned
channel (:meth:`~lottery_style.pruning.channels.ChannelLayout.kept_channels`),
what a physically slimmed copy of a channel ticket runs; each conv call's
share is :func:`torch.utils.flop_counter.conv_flop_count` of its kept shapes,
the formula FlopCounterMode itself applies. For a weight ticket it equals
``flops``: unstructured zeros remove no kernel work.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode, conv_flop_count

from lottery_style.models.base import StyleTransferModule

ConvCall = tuple[list[int], list[int], list[int]]  # input, weight and output shapes of one conv call


@torch.no_grad()
def counted_flops(model: nn.Module, forward: Callable[[], Any]) -> tuple[int, dict[str, list[ConvCall]]]:
    """FlopCounterMode's count of ``forward()``, and the calls of each of ``model``'s convs by its weight name."""
    calls: dict[str, list[ConvCall]] = {}

    def recorder(name: str) -> Any:
        def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
            calls.setdefault(name, []).append((list(inputs[0].shape), list(module.weight.shape), list(output.shape)))

        return hook

    convs = [(f"{name}.weight", m) for name, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    hooks = [module.register_forward_hook(recorder(name)) for name, module in convs]
    counter = FlopCounterMode(display=False)
    try:
        with counter:
            forward()
    finally:
        for hook in hooks:
            hook.remove()
    return counter.get_total_flops(), calls


def stylization_flops(model: StyleTransferModule, size: int, device: torch.device) -> tuple[int, dict[str, list[ConvCall]]]:
    """:func:`counted_flops` of one ``size`` px stylization in eval mode.

    The images are random (FLOPs do not depend on pixel values); the model's own
    random draws (attention subsampling) come from a forked generator, so the
    count leaves the run's random stream untouched.
    """
    was_training = model.training
    model.eval().to(device)
    try:
        with torch.random.fork_rng(devices=[]):
            generator = torch.Generator().manual_seed(0)
            content, style = (torch.rand(1, 3, size, size, generator=generator).to(device) for _ in range(2))
            return counted_flops(model, lambda: model.stylize(content, style))
    finally:
        model.train(was_training)


def kept_flops(flops: int, calls: Mapping[str, list[ConvCall]], kept: Mapping[str, tuple[int, int]]) -> int:
    """``flops`` with each conv in ``kept`` restricted to its (kept output, kept input) channels."""
    removed = 0
    for name, (out, into) in kept.items():
        for x_shape, w_shape, out_shape in calls.get(name, []):
            slim = [out, into, *w_shape[2:]]
            removed += conv_flop_count(x_shape, w_shape, out_shape) - conv_flop_count(x_shape, slim, out_shape)
    return flops - removed


def parameter_counts(model: StyleTransferModule) -> dict[str, int]:
    """Nonzero and total parameters of the parts that stylize (encoder, transform, decoder; not the loss VGG)."""
    params = [p for part in (model.encoder, model.transform, model.decoder) for p in part.parameters()]
    return {"params_nonzero": sum(int(p.count_nonzero()) for p in params), "params_total": sum(p.numel() for p in params)}
