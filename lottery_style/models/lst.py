"""LST, Linear Style Transfer (Li et al., CVPR 2019): a learned linear map of centred features (docs/architectures.md, LST)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from omegaconf import DictConfig
from torch import Tensor, nn

from lottery_style.core.config import POSITIVE, EncoderConfig, ModelConfig, OptimizerConfig, Range, option
from lottery_style.models.base import Losses, StyleTransferModule
from lottery_style.models.components.decoder import MirrorDecoder
from lottery_style.models.components.released import ReferenceLayout, sequential_renames
from lottery_style.models.components.stats import gram, mse_per_sample, sse_per_sample
from lottery_style.models.registry import register_model

# Channels of relu{level}_1 for the levels LST has variants at (r31, r41).
LEVEL_CHANNELS = {3: 256, 4: 512}
CONTENT_LAYER = 4  # relu4_1 of the loss net, for both variants
STYLE_LAYERS = 4  # relu1_1 .. relu4_1
# sunshineatnoon/LinearStyleTransfer names its decoder convs in one sequence over its decoders: the number of
# the first conv of decoder4 (dec_r41.pth) and decoder3 (dec_r31.pth).
REFERENCE_FIRST_DECODER_CONV = {4: 11, 3: 7}


@dataclass
class LSTLossWeights:
    content: float = option(1.0, help="relu4_1 features of the output vs the content's (MSE)")
    style: float = option(0.02, help="Gram matrices of the output's relu1_1..relu4_1 features vs the style's")


@dataclass
class LSTConfig(ModelConfig):
    level: int = option(
        4, help="the VGG level it transforms: 4 (relu4_1, the paper's) or 3 (relu3_1)",
        valid=Range(choices=tuple(LEVEL_CHANNELS)),
    )
    matrix_size: int = option(32, help="m: the learned transformation matrix is m x m", valid=POSITIVE)
    train_decoder: bool = option(
        True, help="train the decoder too (the lottery paper's LST+); the reference trains only the transform"
    )
    encoder: EncoderConfig = field(default_factory=lambda: EncoderConfig(ceil_mode=False))  # LST pools with floor
    optimizer: OptimizerConfig = field(default_factory=lambda: OptimizerConfig(lr_decay=1e-5))
    loss_weights: LSTLossWeights = option(factory=LSTLossWeights, help="weight of each loss term")


class CovarianceNet(nn.Module):
    """Predicts an m x m matrix from the second-order statistics of centred features.

    Three 3x3 convs reduce C channels to m, and their Gram matrix (normalised by
    H*W only) goes through one linear layer: the matrix depends on the image's
    covariance, not on its layout, which is what makes the transform arbitrary-style.
    """

    def __init__(self, channels: int, matrix_size: int):
        super().__init__()
        self.matrix_size = matrix_size
        self.convs = nn.Sequential(
            nn.Conv2d(channels, channels // 2, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(channels // 2, channels // 4, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(channels // 4, matrix_size, 3, padding=1),
        )
        self.fc = nn.Linear(matrix_size**2, matrix_size**2)

    def forward(self, centred: Tensor) -> Tensor:
        reduced = self.convs(centred)
        covariance = gram(reduced) * self.matrix_size  # gram divides by m*H*W; LST by H*W
        return self.fc(covariance.flatten(1)).view(-1, self.matrix_size, self.matrix_size)


class MulLayer(nn.Module):
    """Compress centred content features to m channels, multiply by T = M_s M_c, expand, add the style mean."""

    def __init__(self, channels: int, matrix_size: int = 32):
        super().__init__()
        self.content_net = CovarianceNet(channels, matrix_size)
        self.style_net = CovarianceNet(channels, matrix_size)
        self.compress = nn.Conv2d(channels, matrix_size, 1)
        self.unzip = nn.Conv2d(matrix_size, channels, 1)

    def transformation_matrix(self, content: Tensor, style: Tensor) -> Tensor:
        """The per-sample ``[B, m, m]`` matrix T applied at every content position."""
        return self._matrix(_centred(content)[0], _centred(style)[0])

    def _matrix(self, centred_content: Tensor, centred_style: Tensor) -> Tensor:
        return self.style_net(centred_style) @ self.content_net(centred_content)

    def forward(self, content: Tensor, style: Tensor) -> Tensor:
        centred_content, _ = _centred(content)
        centred_style, style_mean = _centred(style)
        compressed = self.compress(centred_content)
        matrix = self._matrix(centred_content, centred_style)
        transformed = (matrix @ compressed.flatten(2)).view_as(compressed)
        return self.unzip(transformed) + style_mean


def _centred(feat: Tensor) -> tuple[Tensor, Tensor]:
    """Features minus their per-sample, per-channel spatial mean (LST centres without scaling), and the mean."""
    mean = feat.mean(dim=(2, 3), keepdim=True)
    return feat - mean, mean


def mean_gram_loss(outputs: Sequence[Tensor], targets: Sequence[Tensor]) -> Tensor:
    """LST's style loss: summed squared error of channel means plus of Gram matrices, per sample, over layers."""
    total = outputs[0].new_zeros(outputs[0].shape[0])
    for out, tgt in zip(outputs, targets, strict=True):
        total = total + sse_per_sample(out.mean(dim=(2, 3)), tgt.mean(dim=(2, 3)))
        total = total + sse_per_sample(gram(out), gram(tgt))
    return total


@register_model("lst", LSTConfig)
class LST(StyleTransferModule):
    """LST at relu4_1 (r41) or relu3_1 (r31), with floor pooling and a separate loss VGG to relu5_1.

    The reference freezes a pre-trained encoder and reconstruction decoder and
    trains only the transform; the lottery paper's LST+ trains all three. Both
    are reachable: ``train_encoder`` and ``train_decoder`` false leave only the
    transform in the optimizer (a frozen decoder only makes sense with
    pre-trained weights loaded into it).
    """

    loss_depth = 5
    channel_refusal = (
        "its covariance nets flatten feature channels into linear layers and its compress/unzip convs pair up "
        "around the m x m matrix, which no rule here keeps in step yet"
    )

    @property
    def encoder_depth(self) -> int:  # type: ignore[override]  # depends on the configured level
        level = int(self.cfg.level)
        if level not in LEVEL_CHANNELS:
            raise ValueError(f"model.level={level} is invalid for LST: expected 3 (r31) or 4 (r41)")
        return level

    @classmethod
    def frozen_parts(cls, cfg: DictConfig) -> set[str]:
        return super().frozen_parts(cfg) | (set() if cfg.train_decoder else {"decoder"})

    def build_transform(self) -> MulLayer:
        return MulLayer(LEVEL_CHANNELS[self.encoder_depth], int(self.cfg.matrix_size))

    def build_decoder(self) -> nn.Module:
        decoder = MirrorDecoder(level=self.encoder_depth)
        decoder.requires_grad_(bool(self.cfg.train_decoder))  # frozen parts stay out of the optimizer
        return decoder

    def reference_layout(self, part: str) -> ReferenceLayout | None:
        """sunshineatnoon/LinearStyleTransfer's names: ``decoder4`` (conv11 ... conv19) and ``MulLayer`` (snet, cnet)."""
        level = self.encoder_depth
        if part == "transform":
            renames = (("snet.", "style_net."), ("cnet.", "content_net."), ("compress.", "compress."), ("unzip.", "unzip."))
            return ReferenceLayout(f"sunshineatnoon/LinearStyleTransfer r{level}1.pth (snet, cnet, compress, unzip)", renames)
        if part != "decoder":
            return None
        ours = tuple(i for i, module in enumerate(self.decoder.body) if isinstance(module, nn.Conv2d))
        first = REFERENCE_FIRST_DECODER_CONV[level]
        names = tuple(f"conv{first + n}" for n in range(len(ours)))
        source = f"sunshineatnoon/LinearStyleTransfer dec_r{level}1.pth ({names[0]} ... {names[-1]})"
        return ReferenceLayout(source, sequential_renames(names, ours, "body."))

    def transformation_matrix(self, content: Tensor, style: Tensor) -> Tensor:
        """The ``[B, m, m]`` matrix LST applies to the compressed content features of each pair."""
        return self.transform.transformation_matrix(self.encoder(content)[-1], self.encoder(style)[-1])

    def stylize(self, content: Tensor, style: Tensor, alpha: float | Tensor = 1.0) -> Tensor:
        content_feat = self.encoder(content)[-1]
        transformed = self.transform(content_feat, self.encoder(style)[-1])
        return self.decoder(alpha * transformed + (1 - alpha) * content_feat)

    def losses(self, content: Tensor, style: Tensor) -> Losses:
        self.check_size(content, "content")  # the stylized image must match it feature for feature
        stylized = self.decoder(self.transform(self.encoder(content)[-1], self.encoder(style)[-1]))
        out_feats = self.loss_features(stylized)
        with torch.no_grad():
            content_target = self.loss_features(content)[CONTENT_LAYER - 1]
            style_targets = self.loss_features(style)[:STYLE_LAYERS]
        terms = {
            "content": mse_per_sample(out_feats[CONTENT_LAYER - 1], content_target),
            "style": mean_gram_loss(out_feats[:STYLE_LAYERS], style_targets),
        }
        return Losses(terms=terms, stylized=stylized)
