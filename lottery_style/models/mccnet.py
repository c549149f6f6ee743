"""MCCNet (Deng et al., AAAI 2021): multi-channel correlation at relu4_1 (docs/architectures.md, MCCNet).

The losses are SANet's (content, style, two identity terms) plus an
illumination term and total variation, so the module extends SANet and reuses
its batched identity pass, its error groups (E_content = content + both
identity terms, E_style = style) and its test-time ``alpha``, which blends
``T(c, s)`` with ``T(c, c)``. Image sides must be multiples of 8, so that a
decoded image (8x the relu4_1 size) matches its input in the identity loss.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from omegaconf import DictConfig
from torch import Tensor, nn

from lottery_style.core.config import NON_NEGATIVE, POSITIVE, ModelConfig, option
from lottery_style.models.base import Losses
from lottery_style.models.components.released import ReferenceLayout
from lottery_style.models.components.stats import EPS, mse_per_sample, mvn, total_variation
from lottery_style.models.registry import register_model
from lottery_style.models.sanet import SANet, SANetLossWeights

CHANNELS = 512  # relu4_1


@dataclass
class MCCNetLossWeights(SANetLossWeights):
    content: float = 3.0
    style: float = 10.0
    identity1: float = 70.0
    identity2: float = 1.0
    illumination: float = option(3000.0, help="stylizing a noisy content gives the same output (pixels, MSE)")
    tv: float = option(1e-4, help="total variation of the output, summed over the batch (the reference's weight, 10e-5)")


@dataclass
class MCCNetConfig(ModelConfig):
    eps: float = option(
        EPS, help="keeps the correlation weight's denominator from 0 (the reference has none)", valid=POSITIVE
    )
    include_unused_conv: bool = option(
        False, help="add the reference's unused 1x1 conv h, only to load its released checkpoints"
    )
    noise_std_min: float = option(
        0.01, help="illumination loss: noise n ~ N(0, s^2) with s ~ U(min, max), drawn once per step",
        valid=NON_NEGATIVE,
    )
    noise_std_max: float = option(0.02, help="the upper end of that noise level s", valid=NON_NEGATIVE)
    loss_weights: MCCNetLossWeights = option(factory=MCCNetLossWeights, help="weight of each loss term")


class MCCBlock(nn.Module):
    """Re-weights each channel of the content by how strongly the style channel correlates with itself.

    w_c = sum_n G[c,n]^2 / sum_n G[c,n] with G = g(mvn(Fs)), mixed by a linear
    layer, then Fc + o(f(mvn(Fc)) * w). Deviation from the reference: ``eps`` is
    added to the denominator, pushed away from zero in the sum's own sign, so
    that |denominator| >= eps. Without it a constant style (mvn gives 0, so G
    is g's bias) gives 0/0 on any channel whose bias is 0. The weight stays
    ill-conditioned wherever the sum is merely near 0: eps guarantees finite
    values, not small ones.

    The reference also declares a 1x1 conv ``h`` that forward never uses. It is
    left out by default because it never receives a gradient, yet global
    magnitude pruning would rank its untrained weights among the live ones;
    ``include_unused_conv`` restores it to load released checkpoints.
    """

    def __init__(self, channels: int = CHANNELS, eps: float = EPS, include_unused_conv: bool = False):
        super().__init__()
        if eps <= 0:
            raise ValueError(f"model.eps={eps} is invalid: expected a positive number")
        self.eps = eps
        self.f = nn.Conv2d(channels, channels, 1)
        self.g = nn.Conv2d(channels, channels, 1)
        if include_unused_conv:
            self.h = nn.Conv2d(channels, channels, 1)
        self.o = nn.Conv2d(channels, channels, 1)
        self.fc = nn.Linear(channels, channels)

    def channel_weights(self, style: Tensor) -> Tensor:
        """Per-sample ``[B, C]`` self-correlation weights of the style channels, before the linear layer."""
        keys = self.g(mvn(style)).flatten(2)
        total = keys.sum(dim=2)
        denominator = torch.where(total >= 0, total + self.eps, total - self.eps)
        return keys.pow(2).sum(dim=2) / denominator

    def forward(self, content: Tensor, style: Tensor) -> Tensor:
        weights = self.fc(self.channel_weights(style))
        return content + self.o(self.f(mvn(content)) * weights[..., None, None])


@register_model("mccnet", MCCNetConfig)
class MCCNet(SANet):
    """MCCNet: SANet's loss family with a relu4_1 MCC transform, an illumination term and total variation.

    Encoder depth: as SANet's rule, relu4_1 for a trained encoder ("+"), since
    T reads only relu4_1; relu5_1 when the frozen encoder doubles as the loss net.

    Total variation is summed over the batch, as the reference's ``net.py``
    does (``torch.sum`` over the whole stylized batch, weighted 10e-5 in its
    ``train.py``) while every other term is a batch mean: at the paper's batch
    of 8 it weighs 8x a per-sample mean. A multi-GPU (DDP) run sums each
    rank's own local batch and averages gradients over ranks, so the term
    weighs as the reference's at the per-rank ``data.batch_size``.
    """

    transform_levels = (4,)
    size_multiple = 8
    channel_refusal = (
        "its MCC block multiplies f's channels by per-channel weights from a linear layer over g's, which no rule "
        "here keeps in step yet"
    )
    reference_decoder = "diyiiyiii/MCCNet decoder_iter_*.pth"
    batch_summed_terms = ("tv",)

    def __init__(self, cfg: DictConfig | Mapping[str, Any]):
        super().__init__(cfg)
        lo, hi = float(self.cfg.noise_std_min), float(self.cfg.noise_std_max)
        if not 0 <= lo <= hi:
            raise ValueError(f"model.noise_std_min={lo}, noise_std_max={hi} are invalid: expected 0 <= min <= max")
        self.noise_std_range = (lo, hi)

    def build_transform(self) -> MCCBlock:
        return MCCBlock(CHANNELS, float(self.cfg.eps), bool(self.cfg.include_unused_conv))

    def reference_layout(self, part: str) -> ReferenceLayout | None:
        """The decoder as SANet's; the transform as the reference's ``MCC_Module`` (``MCCN.f`` ...) names it.

        The reference's dead conv ``h`` loads into ours with ``include_unused_conv``, else it is dropped.
        """
        if part != "transform":
            return super().reference_layout(part)
        renames = tuple((f"MCCN.{theirs}.", f"{mine}.") for theirs, mine in (("f", "f"), ("g", "g"), ("h", "h"), ("out_conv", "o"), ("fc", "fc")))
        ignored = () if self.cfg.include_unused_conv else ("MCCN.h.",)
        return ReferenceLayout("diyiiyiii/MCCNet mcc_module_iter_*.pth (MCCN.f, g, h, out_conv, fc)", renames, ignored)

    def losses(self, content: Tensor, style: Tensor) -> Losses:
        result, _, style_in = self.identity_pass(content, style)
        result.terms["illumination"] = self.illumination_loss(content, style_in, result.stylized)
        result.terms["tv"] = total_variation(result.stylized)
        return result

    def illumination_loss(self, content: Tensor, style_in: list[Tensor], stylized: Tensor) -> Tensor:
        """Stylizing a noisy content should give the same image (the stylized target is not detached).

        One noise level s ~ U(noise_std_min, noise_std_max) per call from torch's
        global RNG; the term is random, so it is not part of the test error E.
        """
        lo, hi = self.noise_std_range
        noise_std = lo + (hi - lo) * torch.rand((), device=content.device)
        noisy_in = self.transform_inputs(self.encoder(content + noise_std * torch.randn_like(content)))
        return mse_per_sample(self.decoder(self.transform(*noisy_in, *style_in)), stylized)
