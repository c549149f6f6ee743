"""AdaIN (Huang & Belongie 2017): a parameter-free transform at relu4_1 (docs/architectures.md, AdaIN)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from lottery_style.core.config import ModelConfig, option
from lottery_style.models.base import Losses, StyleTransferModule
from lottery_style.models.components.stats import adain, mean_std_loss, mse_per_sample
from lottery_style.models.registry import register_model


@dataclass
class AdaINLossWeights:
    content: float = option(1.0, help="output's relu4_1 features vs the AdaIN target (MSE)")
    style: float = option(10.0, help="mean and std of the output's relu1_1..relu4_1 features vs the style's")


@dataclass
class AdaINConfig(ModelConfig):
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

    def build_transform(self) -> nn.Module:
        return nn.ModuleDict()  # parameter-free

    def stylize(self, content: Tensor, style: Tensor, alpha: float | Tensor = 1.0) -> Tensor:
        content_feat = self.encoder(content)[-1]
        t = adain(content_feat, self.encoder(style)[-1])
        return self.decoder(alpha * t + (1 - alpha) * content_feat)

    def losses(self, content: Tensor, style: Tensor) -> Losses:
        style_feats = self.encoder(style)
        t = adain(self.encoder(content)[-1], style_feats[-1])
        stylized = self.decoder(t)
        out_feats = self.loss_features(stylized)
        if self.loss_net is None:
            target_t, target_style = t.detach(), [f.detach() for f in style_feats]
        else:
            with torch.no_grad():
                target_style = self.loss_net(style)
                target_t = adain(self.loss_net(content)[-1], target_style[-1])
        terms = {
            "content": mse_per_sample(out_feats[-1], target_t),
            "style": mean_std_loss(out_feats, target_style),
        }
        return Losses(terms=terms, stylized=stylized)
