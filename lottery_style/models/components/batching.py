"""Run one network on several inputs as a single batch.

The identity-loss models (SANet, MANet) push three images (stylised, content
identity, style identity) through the same transform, decoder and loss VGG.
One call on the concatenated batch is ~1.7x faster on CPU than three calls
(fewer, larger convolutions), and computes exactly the same per-sample values
because nothing in these networks mixes samples.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

import torch
from torch import Tensor

Output = TypeVar("Output", Tensor, list[Tensor])


def batched_call(fn: Callable[..., Output], calls: Sequence[Sequence[Tensor]]) -> list[Output]:
    """``[fn(*args) for args in calls]``, computed as one call on the concatenated arguments.

    ``fn`` returns a tensor or a list of tensors (an encoder's features). When
    the calls' arguments differ in anything but batch size (e.g. a content
    and a style image of different sizes), it falls back to separate calls.
    """
    first = calls[0]
    same_shapes = all(
        len(args) == len(first) and all(a.shape[1:] == b.shape[1:] for a, b in zip(args, first)) for args in calls
    )
    if len(calls) == 1 or not same_shapes:
        return [fn(*args) for args in calls]
    sizes = [args[0].shape[0] for args in calls]
    output = fn(*(torch.cat(column) for column in zip(*calls)))
    if isinstance(output, Tensor):
        return list(output.split(sizes))
    return [list(parts) for parts in zip(*(tensor.split(sizes) for tensor in output))]
