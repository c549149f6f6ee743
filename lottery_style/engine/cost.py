"""What a ticket costs to run, recorded in every round's ``metrics.json``.

``flops``: the forward FLOPs of one stylization (one content and one style
image of ``data.eval_size`` pixels square) as PyTorch's own
:class:`torch.utils.flop_counter.FlopCounterMode` counts them, of the model as
it runs: a masked ticket runs every dense kernel, zeros included, so its count
is the dense model's. ``flops_kept``: FlopCounterMode's count of the same
stylization by the ticket's physically slim model (every conv narrowed to its
kept output channels and to the input channels that do not read a pruned
channel: :mod:`lottery_style.pruning.slimming`), which is what
``lottery-style export --slim`` writes. The slim weights run through the
model's own modules (:func:`torch.func.functional_call`), so no copy is built;
every op is counted, the attention's products over fewer value channels too.
For a weight ticket it equals ``flops``: unstructured zeros remove no kernel work.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor
from torch.func import functional_call
from torch.utils.flop_counter import FlopCounterMode

from lottery_style.models.base import StyleTransferModule, Stylizer


@torch.no_grad()
def counted_flops(forward: Callable[[], Any]) -> int:
    """FlopCounterMode's count of ``forward()``."""
    counter = FlopCounterMode(display=False)
    with counter:
        forward()
    return counter.get_total_flops()


def stylization_flops(
    model: StyleTransferModule, size: int, device: torch.device, state: Mapping[str, Tensor] | None = None
) -> int:
    """:func:`counted_flops` of one ``size`` px stylization in eval mode; with ``state`` (some of the model's
    parameters by name, e.g. a slim model's narrower convs) the model runs those in place of its own.

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
            if state is None:
                return counted_flops(lambda: model.stylize(content, style))
            swapped = {f"model.{name}": tensor.to(device) for name, tensor in state.items()}
            return counted_flops(lambda: functional_call(Stylizer(model), swapped, (content, style), strict=False))
    finally:
        model.train(was_training)


def parameter_counts(model: StyleTransferModule) -> dict[str, int]:
    """Nonzero and total parameters of the parts that stylize (encoder, transform, decoder; not the loss VGG)."""
    params = [p for part in (model.encoder, model.transform, model.decoder) for p in part.parameters()]
    return {"params_nonzero": sum(int(p.count_nonzero()) for p in params), "params_total": sum(p.numel() for p in params)}
