"""AdaAttN (Liu et al., ICCV 2021) in its released configuration: shallow keys and a relu3_1 skip (docs/architectures.md, AdaAttN).

Every content position receives its own mean and std, read off the style by
attention, instead of AdaIN's single global pair. The attention keys see every
shallower VGG level too ("shallow keys"), so that matching uses low-level
patterns as well as semantics, while the values stay the raw features of one
level so that the statistics carried over are that level's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lottery_style.core.config import POSITIVE, ModelConfig, OptimizerConfig, option
from lottery_style.models.base import Losses, StyleTransferModule, is_full_style
from lottery_style.models.components.attention import attention_weights, weighted_sum
from lottery_style.models.components.batching import batched_call
from lottery_style.models.components.decoder import MIRROR_PLAN, plan_layers
from lottery_style.models.components.released import FileBeside, ReferenceLayout, projection_renames
from lottery_style.models.components.stats import feature_mse, mean_std_loss, mvn, normalised_content_loss
from lottery_style.models.registry import register_model

# relu k_1 channels of VGG-19, k = 1..5; a key at level L has sum(VGG_CHANNELS[:L]) channels.
VGG_CHANNELS = (64, 128, 256, 512, 512)
# relu levels of every loss term (relu1_1 is left out, as in the reference).
LOSS_LEVELS = (2, 3, 4, 5)
# The reference saves each network as <epoch>_net_<name>.pth (its BaseModel.save_networks), e.g. latest_net_decoder.pth.
A3_BESIDE_TRANSFORMER = FileBeside("_net_transformer.pth", "_net_adaattn_3.pth", "net_adaattn_3.")


@dataclass
class AdaAttNLossWeights:
    # "global" is a Python keyword, hence "global_style" for the paper's global style loss.
    content: float = option(
        0.0, help="normalised features of the output vs the content's (the released script trains without it; "
        "it is still logged and enters E)",
    )
    global_style: float = option(10.0, help="mean and std of the output's features vs the style's, relu2_1..relu5_1")
    local: float = option(3.0, help="output's features vs the attention-weighted style statistics at each position")


@dataclass
class AdaAttNConfig(ModelConfig):
    loss_weights: AdaAttNLossWeights = option(factory=AdaAttNLossWeights, help="weight of each loss term")
    max_sample_relu3: int = option(
        4096, help="style positions the relu3_1 (skip) attention may look at; above it a seeded random subset",
        valid=POSITIVE,
    )
    max_sample_relu45: int = option(
        65_536, help="the same for the relu4_1 and relu5_1 attention blocks", valid=POSITIVE
    )
    max_sample_local: int = option(4096, help="the same for the local feature loss at every level", valid=POSITIVE)
    # Inside sqrt(relu(var) + eps): the std's gradient is at most 1/(2 sqrt(eps)) (~158 for 1e-5)
    # instead of infinite where a content position attends to identical style values; 1e-5 is
    # the eps every mean/std in the project uses, so the std is biased by at most ~3e-3.
    eps: float = option(1e-5, help="inside the attention std's sqrt(relu(var) + eps): bounds its gradient", valid=POSITIVE)
    eval_seed: int = option(6666, help="the position-subsampling seed in eval mode (the reference's test-time seed)")
    init_std: float = option(
        0.02, help="transform and decoder weights start N(0, init_std), biases 0", valid=POSITIVE
    )
    optimizer: OptimizerConfig = field(default_factory=lambda: OptimizerConfig(lr=2e-4, lr_decay=0.0))


def shallow_keys(features: Sequence[Tensor], level: int) -> Tensor:
    """Attention keys at relu``level``_1: mvn of relu1_1..relu``level``_1, each resized (nearest) to that level."""
    size = features[level - 1].shape[-2:]
    resized = [f if f.shape[-2:] == size else F.interpolate(f, size=size, mode="nearest") for f in features[:level]]
    return torch.cat([mvn(f) for f in resized], dim=1)


def style_positions(count: int, max_sample: int, seed: int, device: torch.device) -> Tensor | None:
    """Indices of the style positions attention may use: ``None`` for all, else a seeded random subset.

    A private generator keeps the global RNG untouched, and one seed gives the
    same subset to every caller with the same ``count`` (keys, values and the loss).
    """
    if count <= max_sample:
        return None
    generator = torch.Generator().manual_seed(seed)
    return torch.randperm(count, generator=generator)[:max_sample].to(device)


def flat_positions(feature: Tensor, index: Tensor | None) -> Tensor:
    """``[B, C, H, W]`` -> ``[B, C, N]``, keeping only the positions in ``index`` when given."""
    flat = feature.flatten(2)
    return flat if index is None else flat.index_select(2, index)


def attention_normalise(
    content: Tensor, query: Tensor, key: Tensor, value: Tensor, max_sample: int, seed: int, eps: float
) -> Tensor:
    """Give each content position the attention-weighted mean M and std S of the style values: S * mvn(Fc) + M.

    ``query`` (content side) and ``key``/``value`` (style side) are ``[B, C, H, W]``
    maps; keys and values are subsampled at the same positions so that every
    key still describes its own value.
    """
    index = style_positions(key.shape[-2] * key.shape[-1], max_sample, seed, key.device)
    values = flat_positions(value, index)
    weights = attention_weights(query.flatten(2), flat_positions(key, index))
    mean = weighted_sum(weights, values)
    std = (weighted_sum(weights, values * values) - mean * mean).relu().add(eps).sqrt()
    return std.view_as(content) * mvn(content) + mean.view_as(content)


class AdaAttNBlock(nn.Module):
    """Learned projections around :func:`attention_normalise`: f, g on keys (Ck->Ck), h on raw style (C->C).

    There is no residual and no output conv: the block's output *is* the
    re-normalised content, as in the reference.
    """

    def __init__(self, channels: int, key_channels: int, max_sample: int, eps: float):
        super().__init__()
        self.query = nn.Conv2d(key_channels, key_channels, 1)  # f
        self.key = nn.Conv2d(key_channels, key_channels, 1)  # g
        self.value = nn.Conv2d(channels, channels, 1)  # h
        self.max_sample = max_sample
        self.eps = eps

    def forward(self, content: Tensor, style: Tensor, content_key: Tensor, style_key: Tensor, seed: int) -> Tensor:
        return attention_normalise(
            content, self.query(content_key), self.key(style_key), self.value(style), self.max_sample, seed, self.eps
        )


class TransformOutput(NamedTuple):
    features: Tensor  # relu4_1 resolution, 512 channels: the decoder's input
    skip: Tensor  # relu3_1 resolution, 256 channels: concatenated inside the decoder


class AdaAttNTransform(nn.Module):
    """A4 and A5 fused by the merge conv into relu4_1 features, and A3 at relu3_1 for the decoder skip."""

    def __init__(self, max_sample_relu3: int, max_sample_relu45: int, eps: float):
        super().__init__()
        self.a3 = self._block(3, max_sample_relu3, eps)
        self.a4 = self._block(4, max_sample_relu45, eps)
        self.a5 = self._block(5, max_sample_relu45, eps)
        channels = VGG_CHANNELS[3]
        self.merge = nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3))

    @staticmethod
    def _block(level: int, max_sample: int, eps: float) -> AdaAttNBlock:
        return AdaAttNBlock(VGG_CHANNELS[level - 1], sum(VGG_CHANNELS[:level]), max_sample, eps)

    def forward(self, content: Sequence[Tensor], style: Sequence[Tensor], seed: int) -> TransformOutput:
        """``content``/``style``: relu1_1..relu5_1 features; ``seed`` picks the subsampled style positions."""

        def run(block: AdaAttNBlock, level: int) -> Tensor:
            keys = shallow_keys(content, level), shallow_keys(style, level)
            return block(content[level - 1], style[level - 1], *keys, seed)

        deep = F.interpolate(run(self.a5, 5), scale_factor=2, mode="nearest")
        return TransformOutput(features=self.merge(run(self.a4, 4) + deep), skip=run(self.a3, 3))


class SkipDecoder(nn.Module):
    """The mirror decoder whose second conv also reads the A3 output, concatenated on channels.

    4,095,043 parameters: the standard 3,505,219 plus 256x256x9 for the wider conv.
    """

    def __init__(self, skip_channels: int = VGG_CHANNELS[2]):
        super().__init__()
        first, up, (in_ch, out_ch) = MIRROR_PLAN[:3]
        self.head = nn.Sequential(*plan_layers((first, up)))
        self.tail = nn.Sequential(*plan_layers(((in_ch + skip_channels, out_ch),) + MIRROR_PLAN[3:]))

    def forward(self, features: Tensor, skip: Tensor) -> Tensor:
        return self.tail(torch.cat([self.head(features), skip], dim=1))


def at_loss_levels(features: Sequence[Tensor]) -> list[Tensor]:
    """The relu2_1..relu5_1 entries of a relu1_1..relu5_1 feature list."""
    return [features[level - 1] for level in LOSS_LEVELS]


def init_normal_(module: nn.Module, std: float) -> nn.Module:
    """N(0, std) conv/linear weights and zero biases, the reference's (CycleGAN) initialisation."""
    for layer in module.modules():
        if isinstance(layer, (nn.Conv2d, nn.Linear)):
            nn.init.normal_(layer.weight, 0.0, std)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
    return module


@register_model("adaattn", AdaAttNConfig)
class AdaAttN(StyleTransferModule):
    """AdaAttN with the relu3_1 skip decoder; transform and decoder trained (and the encoder in "+" mode).

    Subsampling of style positions uses one seed per call, shared by the
    transform and the local loss so that both look at the same positions:
    drawn from torch's RNG in training mode (a seeded run is reproducible),
    ``eval_seed`` in eval mode (evaluation is deterministic).

    Test error E: ``content`` (normalised content loss at relu2_1..5_1) is the
    content side. The style side is ``global_style`` + ``local``: the paper
    defines E as consistent with each model's optimisation loss, and AdaAttN
    optimises exactly these two style terms (``content`` has weight 0); with the
    fixed eval seed the local term is deterministic.

    ``alpha`` blends transform outputs, alpha*T(c,s) + (1-alpha)*T(c,c), for both
    the relu4_1 features and the skip: blending with raw content features, as
    AdaIN does, would mix the un-normalised encoder output into a decoder
    trained only on transform outputs.
    """

    encoder_depth = 5
    loss_depth = 5
    content_error_terms = ("content",)
    style_error_terms = ("global_style", "local")
    # Content sides: the relu5_1 branch is upsampled x2 onto relu4_1 and the decoder's relu4_1 x2
    # onto the relu3_1 skip. The style may have any size: attention reads it as a set of positions.
    size_multiple = 16
    channel_refusal = (
        "its attention keys concatenate features of several levels and its decoder concatenates a skip, which no "
        "rule here keeps in step yet"
    )
    export_blocker = (
        "its attention draws a seeded random subset of style positions (torch.randperm) once a style has more "
        "positions than model.max_sample_relu3 or max_sample_relu45, which a traced graph cannot reproduce"
    )

    def build_transform(self) -> nn.Module:
        transform = AdaAttNTransform(self.cfg.max_sample_relu3, self.cfg.max_sample_relu45, self.cfg.eps)
        return init_normal_(transform, self.cfg.init_std)

    def build_decoder(self) -> nn.Module:
        return init_normal_(SkipDecoder(), self.cfg.init_std)

    def reference_layout(self, part: str) -> ReferenceLayout | None:
        """Huage001/AdaAttN's released files, state dicts saved as ``<epoch>_net_<name>.pth``.

        The decoder file (``Decoder``) holds ``decoder_layer_1`` and ``decoder_layer_2``,
        our ``head`` and ``tail`` with the same indices. The transform is two files:
        the ``Transformer`` (``attn_adain_4_1``, ``attn_adain_5_1``, ``merge_conv``),
        given as ``model.transform.path``, and the relu3_1 block saved beside it as
        ``net_adaattn_3``; each block's f, g, h are our query, key, value.
        """
        if part == "decoder":
            source = "Huage001/AdaAttN <epoch>_net_decoder.pth (decoder_layer_1, decoder_layer_2)"
            return ReferenceLayout(source, (("decoder_layer_1.", "head."), ("decoder_layer_2.", "tail.")))
        if part == "transform":
            renames = (
                *projection_renames(A3_BESIDE_TRANSFORMER.prefix, "a3.", output=False),
                *projection_renames("attn_adain_4_1.", "a4.", output=False),
                *projection_renames("attn_adain_5_1.", "a5.", output=False),
                ("merge_conv.", "merge.1."),
            )
            source = ("Huage001/AdaAttN <epoch>_net_transformer.pth (attn_adain_4_1, attn_adain_5_1, merge_conv) "
                      "with <epoch>_net_adaattn_3.pth (f, g, h) beside it")  # fmt: skip
            return ReferenceLayout(source, renames, beside=(A3_BESIDE_TRANSFORMER,))
        return None

    def sampling_seed(self) -> int:
        """A fresh seed from torch's RNG when training, the fixed ``eval_seed`` otherwise."""
        if self.training:
            return int(torch.randint(2**31 - 1, ()).item())
        return int(self.cfg.eval_seed)

    def stylize(self, content: Tensor, style: Tensor, alpha: float | Tensor = 1.0) -> Tensor:
        self.check_size(content, "content")
        seed = self.sampling_seed()
        content_feats, style_feats = batched_call(self.encoder, [(content,), (style,)])
        out = self.transform(content_feats, style_feats, seed)
        if not is_full_style(alpha):
            own = self.transform(content_feats, content_feats, seed)
            out = TransformOutput(*(alpha * t + (1 - alpha) * o for t, o in zip(out, own, strict=True)))
        return self.decoder(out.features, out.skip)

    def losses(self, content: Tensor, style: Tensor) -> Losses:
        self.check_size(content, "content")
        seed = self.sampling_seed()
        content_feats, style_feats = batched_call(self.encoder, [(content,), (style,)])
        stylized = self.decoder(*self.transform(content_feats, style_feats, seed))
        out_feats = self.loss_features(stylized)
        with torch.no_grad():
            if self.loss_net is None:
                target_content, target_style = content_feats, style_feats
            else:
                target_content, target_style = batched_call(self.loss_net, [(content,), (style,)])
            target_local = [self.local_target(target_content, target_style, level, seed) for level in LOSS_LEVELS]
        out_feats = at_loss_levels(out_feats)
        terms = {
            "content": normalised_content_loss(out_feats, at_loss_levels(target_content)),
            "global_style": mean_std_loss(out_feats, at_loss_levels(target_style)),
            "local": feature_mse(out_feats, target_local),
        }
        return Losses(terms=terms, stylized=stylized)

    def local_target(self, content: Sequence[Tensor], style: Sequence[Tensor], level: int, seed: int) -> Tensor:
        """The local feature loss target at relu``level``_1: parameter-free attention on the raw shallow keys."""
        return attention_normalise(
            content[level - 1],
            shallow_keys(content, level),
            shallow_keys(style, level),
            style[level - 1],
            self.cfg.max_sample_local,
            seed,
            self.cfg.eps,
        )
