"""``data.decode=device``: training JPEGs decoded, resized and cropped in batches on the training device.

Why: on a GPU the step takes milliseconds and decoding on the CPU sets the pace
(docs/performance.md, Data loading: ``pil`` needs 22-126 cores to feed 100 steps/s at batch 8).
Here the loader workers do only the cheap part: draw the file and the crop
position exactly as ``pil`` does (:meth:`PairDataset.draw <lottery_style.data.pairs.PairDataset.draw>`),
parse the header and read the bytes (:func:`~lottery_style.data.crops.read_uncut`).
Once Lightning has moved a batch to a rank's device,
``StylePairDataModule.on_after_batch_transfer`` calls :func:`decode_batch` there:
one batched ``torchvision.io.decode_jpeg`` (nvjpeg on CUDA), then per image the
whole-image square resize to ``load_size`` and the crop, as ``pil`` cuts it. On
``hardware=cpu`` the very same code runs with device cpu: the tests' CPU
equivalent of the GPU path.

Pixels: the same files and crop positions as ``pil``, and the same decoded
pixels on the CPU (torchvision and PIL both decode with libjpeg-turbo; nvjpeg's
may differ slightly, which cannot be measured here). The resize is torchvision's
antialiased bilinear filter, the tensor counterpart of PIL's, computed in float
and rounded to 256 levels as PIL's uint8 result is: it differs from PIL's by
PIL's fixed-point arithmetic and its rounding between its two passes, at most 1
level (tests/test_device_decode.py measures it). torchvision 0.29 marks its image
decoders deprecated in favour of TorchCodec (a DeprecationWarning, hidden by
default); ``decode_jpeg`` is still the documented batched GPU decoder.

Files of other formats, CMYK or YCCK JPEGs and JPEGs stored rotated (an EXIF
orientation, which the batched nvjpeg decode ignores) are decoded by PIL in the
worker, as ``pil`` decodes them (:func:`~lottery_style.data.crops.read_uncut`).

Unreadable files: a file that is not an image fails its header parse in the
worker, where it is skipped as on every path. A JPEG whose data is
broken (e.g. truncated) fails only when decoded, after collation, so its draw
is redone: ``decode_jpeg`` returns nothing of a batch in which one file fails,
so the batch is then decoded file by file on the CPU (libjpeg-turbo, which
agrees with PIL on broken files, and also decodes a file nvjpeg rejects), and
every side whose file still fails is re-drawn in this process
(:meth:`~lottery_style.data.pairs.PairDataset.redraw`): the file is skipped,
and the same generator draws on past it, so the replacement is the one ``pil``
draws. Either way the skip reaches the run's record
(:class:`~lottery_style.data.images.SkippedImages`) in this process.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torchvision.transforms.functional as TF
from torch import Tensor
from torchvision.io import ImageReadMode, decode_jpeg

from lottery_style.data.images import SkippedFile
from lottery_style.data.pairs import STREAMS, Draw, PairDataset

Uncut = np.ndarray | Tensor  # a JPEG's bytes, or an image decoded in the worker (uint8 [3, H, W])


@dataclass
class UncutSide:
    """One side (content or style) of a collated batch, per item: the drawn file, its crop's (top, left)
    and the uncut image. Not frozen: Lightning's transfer rebuilds a dataclass with its tensors moved to
    the device (the worker-decoded images), leaving the rest (the JPEG bytes, numpy) where it is."""

    files: list[int]
    positions: list[tuple[int, int]]
    images: list[Uncut]


@dataclass
class UncutBatch:
    """A ``Decode.device`` training batch before :func:`decode_batch`; ``indices`` are the items' global
    indices, from which a side whose file fails to decode is re-drawn; ``skipped`` the files the loader
    found unreadable while drawing them."""

    indices: list[int]
    content: UncutSide
    style: UncutSide
    skipped: list[SkippedFile]


def collate_uncut(items: Sequence[tuple[int, Draw, Draw, list[SkippedFile]]]) -> UncutBatch:
    """The loader's ``collate_fn`` for ``Decode.device`` items (index, content draw, style draw, skipped files)."""

    def side(draws: Sequence[Draw]) -> UncutSide:
        return UncutSide([d.index for d in draws], [(d.top, d.left) for d in draws], [d.image for d in draws])

    indices, contents, styles, skipped = zip(*items)
    return UncutBatch(list(indices), side(contents), side(styles), [skip for item in skipped for skip in item])


def decode_batch(batch: UncutBatch, dataset: PairDataset, device: torch.device) -> dict[str, Tensor]:
    """The batch as ``pil`` gives it, float [B, 3, crop, crop] content and style in [0, 1], made on ``device``."""
    return {role: cut_side(role, getattr(batch, role), batch.indices, dataset, device) for role in STREAMS}


def cut_side(role: str, side: UncutSide, indices: list[int], dataset: PairDataset, device: torch.device) -> Tensor:
    """One side's crops, stacked; a side whose file fails to decode is re-drawn until one decodes."""
    crops = []
    for index, file, (top, left), image in zip(indices, side.files, side.positions, decode_all(side.images, device)):
        while isinstance(image, RuntimeError):
            draw = dataset.redraw(role, index, file, f"{type(image).__name__}: {image}")
            file, top, left, image = draw.index, draw.top, draw.left, decode_all([draw.image], device)[0]
        crops.append(square_crop(image, dataset.load_size, top, left, dataset.crop_size))
    return torch.stack(crops)


def decode_all(images: Sequence[Uncut], device: torch.device) -> list[Tensor | RuntimeError]:
    """Every uncut image as uint8 [3, H, W] on ``device`` (or the error that stopped its decode): the JPEGs
    in one batched call, the worker-decoded images moved (a no-op for those Lightning moved already)."""
    jpegs = [k for k, image in enumerate(images) if isinstance(image, np.ndarray)]
    decoded = dict(zip(jpegs, decode_jpegs([images[k] for k in jpegs], device)))
    return [decoded[k] if k in decoded else image.to(device) for k, image in enumerate(images)]


def decode_jpegs(blobs: list[np.ndarray], device: torch.device) -> list[Tensor | RuntimeError]:
    """JPEG bytes decoded to RGB on ``device`` in one call; if that fails, each alone on the CPU, then moved."""
    if not blobs:
        return []
    data = [torch.from_numpy(blob) for blob in blobs]
    try:
        return decode_jpeg(data, mode=ImageReadMode.RGB, device=device)
    except RuntimeError:
        return [decode_alone(one, device) for one in data]


def decode_alone(data: Tensor, device: torch.device) -> Tensor | RuntimeError:
    """One JPEG decoded on the CPU and moved to ``device``, or the error that stopped it."""
    try:
        return decode_jpeg(data, mode=ImageReadMode.RGB).to(device)
    except RuntimeError as error:
        return error


def square_crop(image: Tensor, load_size: int, top: int, left: int, crop_size: int) -> Tensor:
    """``pil``'s crop of a uint8 [3, H, W] image as float in [0, 1]: the whole image resized to a ``load_size``
    square (bilinear, antialiased, in float), cut at (top, left) and rounded to 256 levels."""
    square = TF.resize(image.float(), [load_size, load_size], TF.InterpolationMode.BILINEAR, antialias=True)
    return square[:, top : top + crop_size, left : left + crop_size].round() / 255
