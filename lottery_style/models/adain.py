"""AdaIN (Huang & Belongie 2017): a parameter-free transform at relu4_1, or a shallower level (docs/architectures.md, AdaIN)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from omegaconf import OmegaConf
from torch import Tensor, nn

from lottery_style.core.config import ModelConfig, Range, option
from lottery_style.models.base import Losses, StyleTransferModule
from lottery_style.models.components.decoder import PLAN_START, MirrorDecoder
from lottery_style.models.components.released import ReferenceLayout
from lottery_style.models.components.stats import adain, mean_std_loss, mse_per_sample
from lottery_style.models.registry import register_model

# The level of the paper's AdaIN and of the reference's released decoder.
PAPER_LEVEL = 4


@dataclass
class AdaINLossWeights:
    content: float = option(1.0, help="output's features at the transform's level vs the AdaIN target (MSE)")
    style: float = option(10.0, help="mean and std of the output's relu1_1..relu{style_levels}_1 features vs the style's")


@dataclass
class AdaINConfig(ModelConfig):
    level: int = option(
        PAPER_LEVEL,
        help="the VGG level it transforms at: the encoder stops and the decoder starts at relu{level}_1 (the paper's 4)",
        valid=Range(choices=tuple(sorted(PLAN_START))),
    )
    style_levels: int = option(
        PAPER_LEVEL,
        help="the style loss compares relu1_1..relu{style_levels}_1 (the paper's 4)",
        valid=Range(choices=tuple(sorted(PLAN_START))),
    )
    loss_weights: AdaINLossWeights = option(factory=AdaINLossWeights, help="weight of each loss term")


@register_model("adain", AdaINConfig)
class AdaIN(StyleTransferModule):
    """AdaIN with a trainable decoder (and encoder in "+" mode).

    The content target is AdaIN(loss VGG(content), loss VGG(style)) rather than
    the encoder's own t: with a frozen encoder the two are the same tensor (the
    references' computation), and with a trained encoder the target stays fixed
    instead of moving with the weights being trained.
    """

    reference_decoder = "naoto0804/pytorch-AdaIN decoder.pth"

    def _level_option(self, key: str) -> int:
        """``model.level`` or ``model.style_levels``; a subclass registered with a config of its own that lacks
        them (docs/extending.md) gets the paper's level."""
        return int(OmegaConf.select(self.cfg, key, default=PAPER_LEVEL))

    @property
    def encoder_depth(self) -> int:  # type: ignore[override]  # depends on the configured level
        return self._level_option("level")

    @property
    def loss_depth(self) -> int:  # type: ignore[override]  # the content term needs the level, the style term its levels
        return max(self.encoder_depth, self._level_option("style_levels"))

    def build_decoder(self) -> nn.Module:
        return MirrorDecoder(level=self.encoder_depth)

    def reference_layout(self, part: str) -> ReferenceLayout | None:
        """The reference releases a decoder for relu4_1 only."""
        return super().reference_layout(part) if self.encoder_depth == PAPER_LEVEL else None

    def build_transform(self) -> nn.Module:
        return nn.ModuleDict()  # parameter-free

    def stylize(self, content: Tensor, style: Tensor, alpha: float | Tensor = 1.0) -> Tensor:
        content_feat = self.encoder(content)[-1]
        t = adain(content_feat, self.encoder(style)[-1])
        return self.decoder(alpha * t + (1 - alpha) * content_feat)

    def losses(self, content: Tensor, style: Tensor) -> Losses:
        level, style_levels = self.encoder_depth, self._level_option("style_levels")
        style_feats = self.encoder(style)
        t = adain(self.encoder(content)[-1], style_feats[-1])
        stylized = self.decoder(t)
        out_feats = self.loss_features(stylized)
        if self.loss_net is None:
            target_style = [f.detach() for f in style_feats]
        else:
            with torch.no_grad():
                target_style = self.loss_net(style)
        if self.cfg.train_encoder:  # a target of the frozen loss VGG, not of the encoder being trained
            with torch.no_grad():
                target_t = adain(self.loss_net(content)[level - 1], target_style[level - 1])
        else:  # the frozen encoder holds the loss VGG's weights up to the level: its t is the target
            target_t = t.detach()
        terms = {
            "content": mse_per_sample(out_feats[level - 1], target_t),
            "style": mean_std_loss(out_feats[:style_levels], target_style[:style_levels]),
        }
        return Losses(terms=terms, stylized=stylized)
