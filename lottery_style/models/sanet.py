"""SANet (Park & Lee 2019): style attention at relu4_1 and relu5_1 (docs/architectures.md, SANet).

Image sizes: the relu5_1 branch is upsampled x2 and added to the relu4_1
branch, so height and width must be multiples of 16; other sizes fail with a
ValueError naming the size instead of a shape error deep inside the transform.

Test-time ``alpha`` blends in feature space before decoding,
``alpha * T(c, s) + (1 - alpha) * T(c, c)``, so alpha=0 gives the content
identity image the model is trained to reconstruct.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lottery_style.core.config import ModelConfig, option
from lottery_style.models.base import Losses, StyleTransferModule, is_full_style
from lottery_style.models.components.attention import StyleAttention
from lottery_style.models.components.batching import batched_call
from lottery_style.models.components.released import ReferenceLayout, projection_renames
from lottery_style.models.components.stats import feature_mse, mean_std_loss, mse_per_sample, normalised_content_loss
from lottery_style.models.registry import register_model

# Loss VGG levels (relu k_1) of the normalised content loss.
CONTENT_LEVELS = (4, 5)


@dataclass
class SANetLossWeights:
    content: float = option(1.0, help="normalised relu4_1 and relu5_1 features of the output vs the content's")
    style: float = option(3.0, help="mean and std of the output's features vs the style's, relu1_1..relu5_1")
    identity1: float = option(50.0, help="pixels of content-with-itself and style-with-itself vs the inputs")
    identity2: float = option(1.0, help="features of those identity outputs vs the inputs', every level")


@dataclass
class SANetConfig(ModelConfig):
    loss_weights: SANetLossWeights = option(factory=SANetLossWeights, help="weight of each loss term")


class SANetTransform(nn.Module):
    """SA4(relu4_1) + Up2(SA5(relu5_1)), merged by a reflection-padded 3x3 conv (4,461,056 parameters)."""

    def __init__(self, channels: int = 512):
        super().__init__()
        self.attention4 = StyleAttention(channels)
        self.attention5 = StyleAttention(channels)
        self.merge = nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3))

    def forward(self, content4: Tensor, content5: Tensor, style4: Tensor, style5: Tensor) -> Tensor:
        deep = F.interpolate(self.attention5(content5, style5), scale_factor=2, mode="nearest")
        return self.merge(self.attention4(content4, style4) + deep)


class IdentityPass(NamedTuple):
    """What a loss computation leaves behind for subclasses that add terms (MANet)."""

    losses: Losses
    content_inputs: list[Tensor]  # the transform's inputs from the encoder
    style_inputs: list[Tensor]


@register_model("sanet", SANetConfig)
class SANet(StyleTransferModule):
    """SANet with content, style and the two identity losses.

    Each image goes through the encoder once; T(c,s), T(c,c) and T(s,s), their
    decoding and their loss features each run as one batched call, and the
    targets come from the frozen loss VGG without gradients.
    """

    loss_depth = 5
    content_error_terms = ("content", "identity1", "identity2")
    style_error_terms = ("style",)
    # relu k_1 levels of the encoder features the transform takes, in its argument order.
    transform_levels: ClassVar[tuple[int, ...]] = (4, 5)
    size_multiple = 16  # relu5_1 upsampled x2 must match relu4_1
    reference_decoder = "GlebSBrykin/SANET decoder_iter_500000.pth"

    def reference_layout(self, part: str) -> ReferenceLayout | None:
        """The decoder as the base class says; the transform as GlebSBrykin/SANET's ``Transform`` names it."""
        if part != "transform":
            return super().reference_layout(part)
        renames = (
            *projection_renames("sanet4_1.", "attention4."),
            *projection_renames("sanet5_1.", "attention5."),
            ("merge_conv.", "merge.1."),
        )
        return ReferenceLayout("GlebSBrykin/SANET transformer_iter_500000.pth (sanet4_1.f ... merge_conv)", renames)

    @property
    def encoder_depth(self) -> int:  # type: ignore[override]  # depends on train_encoder
        """The deepest level the transform reads; relu5_1 always when the frozen encoder is the loss net.

        A trained encoder ("+") stops at the transform's deepest level: deeper convs
        would get no gradient (the losses use the separate frozen loss VGG) and would
        only inflate the weights that global magnitude pruning ranks.
        """
        return max(self.transform_levels) if self.cfg.train_encoder else self.loss_depth

    def build_transform(self) -> nn.Module:
        return SANetTransform()

    def fixed_channels(self) -> set[str]:
        """The base's, plus each attention block's query and key (their channels pair up in QᵀK) and output (added
        to the content features), and the encoder convs whose relu k_1 the transform reads (the residual's other
        operand, and mean-variance normalised, which does not keep a zero channel zero)."""
        blocks = [name for name, module in self.transform.named_children() if isinstance(module, StyleAttention)]
        taps = self.encoder.tap_conv_weights()
        return (
            super().fixed_channels()
            | {f"transform.{block}.{conv}.weight" for block in blocks for conv in ("query", "key", "output")}
            | {f"encoder.{taps[level - 1]}" for level in self.transform_levels}
        )

    def channel_links(self) -> dict[str, list[str]]:
        """The bodies' chains, each attention's value into its output, and the merge conv into the decoder."""
        links = self.body_links()
        for block in ("attention4", "attention5"):
            links[f"transform.{block}.value.weight"] = [f"transform.{block}.output.weight"]
        links["transform.merge.1.weight"] = [self.decoder_convs()[0]]
        return links

    def transform_inputs(self, features: list[Tensor]) -> list[Tensor]:
        return [features[level - 1] for level in self.transform_levels]

    def encode(self, content: Tensor, style: Tensor) -> tuple[list[Tensor], list[Tensor]]:
        """Encoder features of both images, after checking their sizes."""
        self.check_size(content, "content")
        self.check_size(style, "style")
        content_feats, style_feats = batched_call(self.encoder, [(content,), (style,)])
        return content_feats, style_feats

    def loss_targets(
        self, content: Tensor, style: Tensor, content_feats: list[Tensor], style_feats: list[Tensor]
    ) -> tuple[list[Tensor], list[Tensor]]:
        """Loss VGG features of the inputs; the encoder's own when it is the (frozen) loss net."""
        if self.loss_net is None:
            return [f.detach() for f in content_feats], [f.detach() for f in style_feats]
        with torch.no_grad():
            target_c, target_s = batched_call(self.loss_net, [(content,), (style,)])
        return target_c, target_s

    def stylize(self, content: Tensor, style: Tensor, alpha: float | Tensor = 1.0) -> Tensor:
        content_in, style_in = map(self.transform_inputs, self.encode(content, style))
        if is_full_style(alpha):
            return self.decoder(self.transform(*content_in, *style_in))
        styled, identity = batched_call(self.transform, [(*content_in, *style_in), (*content_in, *content_in)])
        return self.decoder(alpha * styled + (1 - alpha) * identity)

    def decode_features(self, calls: list[tuple[Tensor, ...]]) -> tuple[list[Tensor], list[list[Tensor]]]:
        """Transform each argument tuple, decode, and take loss features: (images, their features)."""
        images = batched_call(self.decoder, [(t,) for t in batched_call(self.transform, calls)])
        return images, batched_call(self.loss_features, [(image,) for image in images])

    def identity_pass(self, content: Tensor, style: Tensor) -> IdentityPass:
        content_feats, style_feats = self.encode(content, style)
        target_c, target_s = self.loss_targets(content, style, content_feats, style_feats)
        content_in, style_in = self.transform_inputs(content_feats), self.transform_inputs(style_feats)
        calls = [(*content_in, *style_in), (*content_in, *content_in), (*style_in, *style_in)]
        (stylized, content_id, style_id), (out, out_cc, out_ss) = self.decode_features(calls)
        picked = [level - 1 for level in CONTENT_LEVELS]
        terms = {
            "content": normalised_content_loss([out[i] for i in picked], [target_c[i] for i in picked]),
            "style": mean_std_loss(out, target_s),
            "identity1": mse_per_sample(content_id, content) + mse_per_sample(style_id, style),
            "identity2": feature_mse(out_cc, target_c) + feature_mse(out_ss, target_s),
        }
        return IdentityPass(Losses(terms=terms, stylized=stylized), content_in, style_in)

    def losses(self, content: Tensor, style: Tensor) -> Losses:
        return self.identity_pass(content, style).losses
