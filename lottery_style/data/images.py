"""Finding images in a folder and opening them without letting one bad file stop a run.

COCO and WikiArt each hold tens of thousands of files gathered from the web; a
few are truncated, CMYK, grayscale, paletted or transparent. Training must see
every one of them as RGB, and must step over an unreadable one instead of
crashing hours into a round.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

from PIL import Image

IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp", "bmp")

# What PIL raises for a truncated, corrupt or absurdly large file.
_UNREADABLE = (OSError, SyntaxError, ValueError, Image.DecompressionBombError)
Loaded = TypeVar("Loaded")


class DataError(ValueError):
    """Data that cannot work (a bad folder, size or count); the one-line message names the value."""


class NoImagesError(DataError):
    """A folder that should hold images is missing, empty, or holds only unreadable files."""


class SkippedImageWarning(UserWarning):
    """An image could not be read and another one was used in its place."""


def _walk_images(root: Path) -> Iterator[Path]:
    """Image files under ``root`` in walk order. Hidden files are ignored: they are mostly the
    ``._name.jpg`` resource forks macOS leaves behind, which are not images."""
    for directory, subdirs, names in os.walk(root, followlinks=True):
        subdirs[:] = [d for d in subdirs if not d.startswith(".")]
        for name in names:
            if not name.startswith(".") and name.rpartition(".")[2].lower() in IMAGE_EXTENSIONS:
                yield Path(directory, name)


def folder_problem(folder: str | Path) -> str | None:
    """Why ``folder`` cannot serve images ("does not exist", ...), or None; stops at the first image found,
    so a config check costs nothing on a folder of 80,000 images."""
    root = Path(folder).expanduser()
    if not root.is_dir():
        return "is not a folder" if root.exists() else "does not exist"
    if next(_walk_images(root), None) is None:
        return f"has no images ({', '.join(IMAGE_EXTENSIONS)})"
    return None


def list_images(folder: str | Path, role: str) -> list[Path]:
    """Every image under ``folder`` (recursively, symlinks followed), in a fixed order.

    The order is sorted so that a seeded index means the same file on every
    machine and every rank.
    """
    root = Path(folder).expanduser()
    found = sorted(_walk_images(root), key=str) if root.is_dir() else []
    if not found:
        raise NoImagesError(f"{role} folder {root} {folder_problem(root)}")
    return found


def to_rgb(image: Image.Image) -> Image.Image:
    """RGB of any PIL mode (an RGB image is returned itself, loaded, not copied); transparent pixels are
    composited onto white, as a viewer shows them."""
    has_alpha = "A" in image.getbands() or "transparency" in image.info
    if not has_alpha:
        if image.mode != "RGB":
            return image.convert("RGB")
        image.load()  # no copy of an RGB image, but decoded now: callers may close its file next
        return image
    rgba = image.convert("RGBA")
    background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(background, rgba).convert("RGB")


def open_rgb(path: Path, draft_size: int | None = None) -> Image.Image:
    """The decoded image as RGB; raises one of ``_UNREADABLE`` for a bad file.

    ``draft_size``: a JPEG is decoded at the smallest DCT scale (1/2, 1/4, 1/8) whose sides are both
    still >= ``draft_size`` (PIL's draft mode), which skips most of the decoding work; other formats
    decode as usual.
    """
    with Image.open(path) as image:
        if draft_size is not None:
            image.draft("RGB", (draft_size, draft_size))
        image.load()  # decode now: a truncated file fails here, not in a later transform
        return to_rgb(image)


class ImageReader:
    """Opens images of one folder as RGB, remembering and counting the files it could not read.

    A file found unreadable is never tried again, so the count is of distinct
    files; with DataLoader workers each worker keeps its own count.
    """

    def __init__(self, role: str, total: int) -> None:
        self.role = role
        self.total = total
        self.unreadable: set[Path] = set()

    def read(self, path: Path, draft_size: int | None = None) -> Image.Image | None:
        """The image as RGB (:func:`open_rgb`), or None (with a warning) when it cannot be decoded."""
        return self.attempt(path, lambda file: open_rgb(file, draft_size))

    def attempt(self, path: Path, opener: Callable[[Path], Loaded]) -> Loaded | None:
        """``opener(path)``, or None (with a warning) when it raises what PIL raises for a bad file; a path
        found unreadable before is not tried again."""
        if path in self.unreadable:
            return None
        try:
            return opener(path)
        except _UNREADABLE as error:
            self.skip(path, f"{type(error).__name__}: {error}")
            return None

    def skip(self, path: Path, reason: str) -> None:
        """Remember ``path`` as unreadable and warn once, with the running count; stop when none is left."""
        self.unreadable.add(path)
        warnings.warn(
            f"skipped unreadable {self.role} image {path} ({reason}); "
            f"{len(self.unreadable)} {self.role} image(s) skipped so far",
            SkippedImageWarning,
            stacklevel=3,
        )
        if len(self.unreadable) >= self.total:
            raise NoImagesError(f"all {self.total} {self.role} images are unreadable (last: {path})")
