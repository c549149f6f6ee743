"""Cutting one training crop: from an original file, or from a prepared folder's array.

The sampling is the reference ports': resize the image to a ``load_size``
square (bilinear, aspect distorted), then crop ``crop_size`` at (top, left).
``data.decode=pil`` does exactly that. ``data.decode=draft`` trades exactness
for speed twice: a JPEG is decoded at a reduced DCT scale
(:func:`~lottery_style.data.images.open_rgb`), and only the crop's box is
resized (:func:`resized_crop`) instead of the whole image, three quarters of
which the crop throws away (docs/performance.md states the pixel effect). A
prepared folder holds the whole square resize already, so its crop is a slice
with exactly ``pil``'s pixels. ``data.decode=device`` leaves the image uncut
(:class:`UncutImages`): it is decoded, resized and cropped on the training device
after collation (:mod:`lottery_style.data.device_decode`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
import torchvision.transforms.functional as TF
from PIL import Image
from torch import Tensor

from lottery_style.core.config import Decode
from lottery_style.data.images import ImageReader, is_upright, open_rgb

Opened = Image.Image | np.ndarray | Tensor
# JPEG modes every decoder turns into RGB alike; a CMYK or YCCK JPEG (rare: print scans) is decoded by PIL.
UNCUT_JPEG_MODES = ("RGB", "L")


def square_resize(image: Image.Image, size: int) -> Image.Image:
    """The whole image resized to a ``size`` square, as training sees it (what a prepared file holds)."""
    return image.resize((size, size), Image.Resampling.BILINEAR)


def resized_crop(image: Image.Image, load_size: int, top: int, left: int, crop_size: int) -> Image.Image:
    """``square_resize(image, load_size)`` cropped at (top, left), computed from the crop's box alone.

    The same filter at the same places, but not always the same pixels: Pillow chooses the order of its
    horizontal and vertical passes from the sizes involved, and the passes round to uint8 in between,
    so a box may be resampled in the other order than the whole image (up to 1 level on some pixels).
    """
    scale_x, scale_y = image.width / load_size, image.height / load_size
    box = (left * scale_x, top * scale_y, (left + crop_size) * scale_x, (top + crop_size) * scale_y)
    return image.resize((crop_size, crop_size), Image.Resampling.BILINEAR, box=box)


class CropSource(Protocol):
    """The images of one side (content or style): ``open`` an image by index (None: unreadable,
    remembered by ``reader``), then ``crop`` it once the crop position is drawn
    (float [3, crop, crop]; :class:`UncutImages` returns the image uncut)."""

    reader: ImageReader

    def __len__(self) -> int: ...

    def open(self, index: int) -> Opened | None: ...

    def crop(self, image: Opened, top: int, left: int) -> Tensor | np.ndarray: ...


def file_source(role: str, files: Sequence[Path], load_size: int, crop_size: int, decode: Decode) -> CropSource:
    """The crop source of original files for ``decode``."""
    if Decode(decode) is Decode.device:
        return UncutImages(role, files)
    return FileCrops(role, files, load_size, crop_size, decode)


class FileCrops:
    """Crops from the original files, decoded at every draw (in draft mode for ``Decode.draft``)."""

    def __init__(self, role: str, files: Sequence[Path], load_size: int, crop_size: int, decode: Decode) -> None:
        self.files = list(files)
        self.reader = ImageReader(role, len(self.files))
        self.load_size, self.crop_size = load_size, crop_size
        self.draft_size = load_size if Decode(decode) is Decode.draft else None  # None: today's exact pixels

    def __len__(self) -> int:
        return len(self.files)

    def open(self, index: int) -> Image.Image | None:
        return self.reader.read(self.files[index], self.draft_size)

    def crop(self, image: Opened, top: int, left: int) -> Tensor:
        assert isinstance(image, Image.Image)
        if self.draft_size is None:
            square = square_resize(image, self.load_size)
            return TF.to_tensor(square.crop((left, top, left + self.crop_size, top + self.crop_size)))
        return TF.to_tensor(resized_crop(image, self.load_size, top, left, self.crop_size))


class PreparedCrops:
    """Crops sliced from a prepared folder's uint8 arrays (already at the load size), read as memory maps.

    ``files`` are the source files (named in warnings); ``prepared`` their prepared files, None for
    a source that was unreadable at preparation, which is skipped as the original would be.
    """

    def __init__(self, role: str, files: Sequence[Path], prepared: Sequence[Path | None], crop_size: int) -> None:
        self.files, self.prepared = list(files), list(prepared)
        self.reader = ImageReader(role, len(self.files))
        self.crop_size = crop_size

    def __len__(self) -> int:
        return len(self.files)

    def open(self, index: int) -> np.ndarray | None:
        source, target = self.files[index], self.prepared[index]
        if source in self.reader.unreadable:
            return None
        if target is None:
            self.reader.skip(source, "recorded as unreadable when its folder was prepared")
            return None
        try:
            return np.load(target, mmap_mode="r")
        except (OSError, ValueError) as error:
            self.reader.skip(source, f"prepared file {target}: {type(error).__name__}: {error}")
            return None

    def crop(self, image: Opened, top: int, left: int) -> Tensor:
        assert isinstance(image, np.ndarray)
        return TF.to_tensor(np.array(image[top : top + self.crop_size, left : left + self.crop_size]))


def read_uncut(path: Path) -> np.ndarray | Tensor:
    """What a loader worker sends for ``Decode.device``: an upright JPEG's bytes, its header parsed but nothing
    decoded; a file of another format, a CMYK or YCCK JPEG, or a JPEG stored rotated (an EXIF orientation but 1)
    decoded here as ``pil`` decodes it, uint8 [3, H, W]. The batched nvjpeg decode ignores EXIF orientation
    (torchvision 0.29 applies ``apply_exif_orientation`` on the CPU only), so a rotated photo is turned upright
    here, by the same :func:`~lottery_style.data.images.open_rgb` as on every other path.

    Parsing the header rejects, in the worker and as on every path, a file that is not an image at all; a
    JPEG with broken data fails only when decoded (:mod:`~lottery_style.data.device_decode`). The bytes are
    a uint8 numpy array, not a tensor: Lightning's batch transfer moves every tensor to the device, and
    ``decode_jpeg`` wants its input on the CPU.
    """
    with Image.open(path) as image:  # reads the header only
        uncut = image.format == "JPEG" and image.mode in UNCUT_JPEG_MODES and is_upright(image)
    return np.fromfile(path, dtype=np.uint8) if uncut else TF.pil_to_tensor(open_rgb(path))


class UncutImages:
    """The files for ``Decode.device``: ``open`` reads one (:func:`read_uncut`), ``crop`` leaves it uncut."""

    def __init__(self, role: str, files: Sequence[Path]) -> None:
        self.files = list(files)
        self.reader = ImageReader(role, len(self.files))

    def __len__(self) -> int:
        return len(self.files)

    def open(self, index: int) -> np.ndarray | Tensor | None:
        return self.reader.attempt(self.files[index], read_uncut)

    def crop(self, image: Opened, top: int, left: int) -> np.ndarray | Tensor:
        assert isinstance(image, (np.ndarray, Tensor))
        return image  # decoded, resized and cut at (top, left) on the device, after collation
