"""MANet (Deng et al. 2020): content, style and co-adaptation attention at relu4_1 (docs/architectures.md, MANet).

The encoder goes to relu5_1 only because the content loss needs it; the
transform takes relu4_1. The losses are SANet's (with style weight 5) plus two
disentanglement terms, switched on once the weighted content + style loss
falls below ``dis_gate``.

The disentanglement terms follow the paper's intent, not the reference code
(whose "one image expanded to the batch" inputs come from the wrong loader):
``dis_content`` stylises the batch's first content with every style of the
batch and asks the normalised relu4_1/relu5_1 features of the results to
agree; ``dis_style`` stylises every content with the first style and asks the
mean/std statistics at relu1_1..relu5_1 to agree. Agreement is measured
between the batch and a random derangement of it drawn from torch's global
RNG (seeded runs repeat it); with a batch of one both terms are 0. They are
random, so they are not part of the test error E.

Image sizes must be multiples of 8, so that the decoded image (8x the relu4_1
size) matches its input in the identity loss. ``alpha`` blends
``T(c, s)`` with ``T(c, c)`` in feature space, as in SANet.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from lottery_style.core.config import NON_NEGATIVE, ModelConfig, option
from lottery_style.models.base import Losses
from lottery_style.models.components.attention import ChannelAttention, StyleAttention
from lottery_style.models.components.released import ReferenceLayout, projection_renames
from lottery_style.models.components.stats import mean_std_loss, normalised_content_loss
from lottery_style.models.registry import register_model
from lottery_style.models.sanet import CONTENT_LEVELS, SANet, SANetLossWeights


@dataclass
class MANetLossWeights(SANetLossWeights):
    style: float = 5.0
    dis_content: float = option(1.0, help="disentanglement: one content with different styles keeps its content")
    dis_style: float = option(1.0, help="disentanglement: one style with different contents keeps its style")


@dataclass
class MANetConfig(ModelConfig):
    loss_weights: MANetLossWeights = option(factory=MANetLossWeights, help="weight of each loss term")
    dis_gate: float = option(
        10.0, help="the dis terms join once the weighted content + style loss falls below this", valid=NON_NEGATIVE
    )


class MANetTransform(nn.Module):
    """Content self-attention, style channel attention, then co-adaptation (3,151,872 parameters)."""

    def __init__(self, channels: int = 512):
        super().__init__()
        self.content_attention = StyleAttention(channels)
        self.style_attention = ChannelAttention(channels)
        self.co_attention = StyleAttention(channels)

    def forward(self, content: Tensor, style: Tensor) -> Tensor:
        return self.co_attention(self.content_attention(content, content), self.style_attention(style))


def derangement(batch: int, device: torch.device) -> tuple[Tensor, Tensor]:
    """Two index orders pairing every sample with a different one (a shuffled cycle).

    A plain random permutation would leave some samples paired with themselves,
    which makes their term 0 for that step.
    """
    order = torch.randperm(batch)
    return order.to(device), order.roll(1).to(device)


@register_model("manet", MANetConfig)
class MANet(SANet):
    """MANet: SANet's loss family with a relu4_1-only transform and disentanglement terms."""

    transform_levels = (4,)
    size_multiple = 8
    channel_refusal = "its style channel attention mixes every channel with every other (C x C), so a zero channel does not stay zero"
    reference_decoder = "diyiiyiii/Arbitrary-Style-Transfer-via-Multi-Adaptation-Network decoder_iter_*.pth"

    def build_transform(self) -> nn.Module:
        return MANetTransform()

    def reference_layout(self, part: str) -> ReferenceLayout | None:
        """The decoder as SANet's; the transform as the reference's ``Multi_Adaptation_Module`` names it."""
        if part != "transform":
            return super().reference_layout(part)
        renames = (
            *projection_renames("CSA.", "content_attention."),
            *projection_renames("SSA.", "style_attention."),
            *projection_renames("CA.", "co_attention."),
        )
        return ReferenceLayout(
            "diyiiyiii/Arbitrary-Style-Transfer-via-Multi-Adaptation-Network ma_module_iter_*.pth (CSA, SSA, CA)", renames
        )

    def dis_gate_open(self, terms: dict[str, Tensor]) -> bool:
        weighted = sum(self.loss_weights[name] * terms[name].detach().mean() for name in ("content", "style"))
        return bool(weighted < self.cfg.dis_gate)

    def disentanglement(self, content_in: list[Tensor], style_in: list[Tensor]) -> dict[str, Tensor]:
        """``dis_content`` and ``dis_style`` per sample (see the module docstring)."""
        (content,), (style,) = content_in, style_in
        one_content, one_style = content[:1].expand_as(content), style[:1].expand_as(style)
        _, (out_c, out_s) = self.decode_features([(one_content, style), (content, one_style)])
        order, partner = derangement(content.shape[0], content.device)
        picked = [out_c[level - 1] for level in CONTENT_LEVELS]
        return {
            "dis_content": normalised_content_loss([f[order] for f in picked], [f[partner] for f in picked]),
            "dis_style": mean_std_loss([f[order] for f in out_s], [f[partner] for f in out_s]),
        }

    def losses(self, content: Tensor, style: Tensor) -> Losses:
        result, content_in, style_in = self.identity_pass(content, style)
        terms = result.terms
        if self.dis_gate_open(terms):
            terms.update(self.disentanglement(content_in, style_in))
        else:
            zero = content.new_zeros(content.shape[0])
            terms.update(dis_content=zero, dis_style=zero)
        return result
