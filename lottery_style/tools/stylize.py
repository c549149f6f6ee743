"""Applying a ticket to images: every content x every style -> one PNG.

Sizes: a model needs image sides that are multiples of its ``size_multiple``
(8, or 16 when relu5_1 feeds the transform). With ``size=N`` each image is
scaled so that its shorter side is N (aspect kept), then each side is rounded
to the nearest multiple. With ``size=None`` (``--keep-size``) each image keeps
its own size rounded to the nearest multiple, and the output is resized back to
the content's exact size. An image whose sides already fit is never resampled.

Images are read as training reads them (:func:`~lottery_style.data.images.open_rgb`):
upright by their EXIF orientation, 16-bit ones at their true values. From a
folder, an unreadable image is skipped and handed back to the caller, which
names it; the others are still stylized.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import torch
import torchvision.transforms.functional as TF
from PIL import Image
from torch import Tensor

from lottery_style.core.atomic import atomic_write
from lottery_style.data.images import _UNREADABLE, DataError, SkippedFile, list_images, open_rgb
from lottery_style.models.base import StyleTransferModule


def image_paths(path: str | Path, role: str) -> list[Path]:
    """One image file, or every image under a folder (recursively, in a fixed order)."""
    path = Path(path).expanduser()
    if not path.exists():
        raise DataError(f"{role} image or folder {path} does not exist")
    return list_images(path, role) if path.is_dir() else [path]


def read_image(path: Path, role: str, skip: bool) -> Image.Image | SkippedFile:
    """The image as 8-bit RGB, upright; if it cannot be read, its :class:`SkippedFile` when ``skip``, else a
    one-line DataError naming it (a single image given: there is nothing else to stylize)."""
    try:
        return open_rgb(path)
    except _UNREADABLE as error:
        reason = f"{type(error).__name__}: {error}"
        if skip:
            return SkippedFile(role, path, reason)
        raise DataError(f"cannot read {role} image {path}: {reason}") from None


def fitted_size(width: int, height: int, size: int | None, multiple: int) -> tuple[int, int]:
    """(width, height) scaled to a shorter side of ``size`` (if given), each rounded to a multiple of ``multiple``."""
    if size is not None:
        scale = size / min(width, height)
        width, height = round(width * scale), round(height * scale)
    return tuple(max(multiple, round(side / multiple) * multiple) for side in (width, height))  # type: ignore[return-value]


def to_model_input(image: Image.Image, size: int | None, multiple: int) -> Tensor:
    """``[1, 3, H, W]`` in [0, 1] with sides fitted for the model."""
    target = fitted_size(*image.size, size, multiple)
    if target != image.size:
        image = image.resize(target, Image.Resampling.BICUBIC, reducing_gap=None)
    return TF.to_tensor(image).unsqueeze(0)


def to_png_image(output: Tensor, size: tuple[int, int] | None = None) -> Image.Image:
    """A ``[1, 3, H, W]`` output as 8-bit RGB (rounded, clamped), resized to ``size`` (width, height) if given."""
    pixels = output[0].clamp(0, 1).mul(255).round().to(torch.uint8).cpu()
    image = TF.to_pil_image(pixels)
    return image if size is None or size == image.size else image.resize(size, Image.Resampling.BICUBIC)


def unique_labels(paths: Sequence[Path]) -> list[str]:
    """File stems, or the names relative to their common folder when stems collide (a.jpg and a.png, sub/a.jpg)."""
    stems = [p.stem for p in paths]
    if len(set(stems)) == len(stems):
        return stems
    root = Path(os.path.commonpath([p.parent for p in paths]))
    return [str(p.relative_to(root)).replace(os.sep, "_") for p in paths]


@torch.inference_mode()
def stylize_images(
    model: StyleTransferModule,
    contents: Sequence[Path],
    styles: Sequence[Path],
    out_dir: str | Path,
    *,
    alpha: float = 1.0,
    size: int | None = 512,
    device: torch.device | str = "cpu",
) -> Iterable[Path | SkippedFile]:
    """Write ``<content>__<style>.png`` for every pair into ``out_dir``; yields each file as it is written,
    and each unreadable image of a folder (more than one image given for its role) as a :class:`SkippedFile`
    (the styles' first). A single unreadable image, or styles none of which can be read, is a DataError."""
    if not 0.0 <= alpha <= 1.0:
        raise DataError(f"alpha={alpha} is outside [0, 1]: 0 reconstructs the content, 1 is the full style")
    if size is not None and size < model.size_multiple:
        raise DataError(f"size={size} is smaller than the {model.size_multiple} px the model needs at least")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model = model.to(device)
    multiple = model.size_multiple
    style_inputs = []
    for style_path, style_label in zip(styles, unique_labels(styles)):
        style_image = read_image(style_path, "style", skip=len(styles) > 1)
        if isinstance(style_image, SkippedFile):
            yield style_image
        else:
            style_inputs.append((to_model_input(style_image, size, multiple).to(device), style_label))
    if not style_inputs:
        raise DataError(f"none of the {len(styles)} style images can be read")
    for content_path, content_label in zip(contents, unique_labels(contents)):
        content_image = read_image(content_path, "content", skip=len(contents) > 1)
        if isinstance(content_image, SkippedFile):
            yield content_image
            continue
        content = to_model_input(content_image, size, multiple).to(device)
        for style, style_label in style_inputs:
            output = model.stylize(content, style, alpha=alpha)
            image = to_png_image(output, content_image.size if size is None else None)
            path = out_dir / f"{content_label}__{style_label}.png"
            atomic_write(path, lambda handle, image=image: image.save(handle, format="PNG"))
            yield path
