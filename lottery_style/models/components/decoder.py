"""The decoder that mirrors the VGG encoder (docs/architectures.md, The decoder).

Every 3x3 conv is reflection-padded and followed by a ReLU, except the last
one: the output is left unbounded during training as in the references.
Upsampling is x2 nearest, never bilinear or transposed conv.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

# (in, out) of each conv from relu4_1 down to RGB; "up" marks a x2 upsampling.
MIRROR_PLAN: tuple[tuple[int, int] | str, ...] = (
    (512, 256), "up",
    (256, 256), (256, 256), (256, 256), (256, 128), "up",
    (128, 128), (128, 64), "up",
    (64, 64), (64, 3),
)  # fmt: skip

# Where the plan starts for a decoder that inverts relu{level}_1.
PLAN_START = {4: 0, 3: 5, 2: 8, 1: 10}


def mirror_layers(level: int = 4) -> list[nn.Module]:
    """The decoder's modules for features at relu``level``_1."""
    if level not in PLAN_START:
        raise ValueError(f"decoder level {level} is invalid: expected one of {sorted(PLAN_START)}")
    return plan_layers(MIRROR_PLAN[PLAN_START[level] :])


def plan_layers(plan: Sequence[tuple[int, int] | str]) -> list[nn.Module]:
    """Modules for any stretch of a decoder plan, so variants (e.g. skip inputs) reuse the same rules.

    A conv that is the plan's last step gets no ReLU: only the image output is left unbounded.
    """
    layers: list[nn.Module] = []
    for index, step in enumerate(plan):
        if step == "up":
            layers.append(nn.Upsample(scale_factor=2, mode="nearest"))
            continue
        in_ch, out_ch = step
        layers += [nn.ReflectionPad2d(1), nn.Conv2d(in_ch, out_ch, 3)]
        if index < len(plan) - 1:
            layers.append(nn.ReLU())
    return layers


class MirrorDecoder(nn.Module):
    """Decoder from relu``level``_1 features back to an RGB image."""

    def __init__(self, level: int = 4):
        super().__init__()
        self.level = level
        self.body = nn.Sequential(*mirror_layers(level))

    def forward(self, features: Tensor) -> Tensor:
        return self.body(features)
