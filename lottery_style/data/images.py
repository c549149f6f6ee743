"""Finding images in a folder and opening them without letting one bad file stop a run.

COCO and WikiArt each hold tens of thousands of files gathered from the web; a
few are truncated, CMYK, grayscale, 16-bit, paletted, transparent or stored
rotated with an EXIF orientation. Training must see every one of them as the
8-bit RGB picture a viewer shows, and must step over an unreadable one instead
of crashing hours into a round, naming it once in the run's log and records.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import numpy as np
from PIL import ExifTags, Image, ImageFile, ImageOps

log = logging.getLogger(__name__)


def _readable_extensions() -> tuple[str, ...]:
    """Every file extension of a format this Pillow opens and decodes: a folder may hold GIFs, TIFFs or PPMs as
    well as JPEGs. Formats Pillow identifies but cannot decode (the stubs HDF5, GRIB, BUFR, WMF/EMF, and MPEG)
    are left out: a data set's own files (``.h5``) or videos would otherwise be listed as images."""
    Image.init()
    decodable = {
        name for name, (factory, _) in Image.OPEN.items()
        if name != "MPEG" and not (isinstance(factory, type) and issubclass(factory, ImageFile.StubImageFile))
    }  # fmt: skip
    return tuple(sorted(ext[1:] for ext, name in Image.registered_extensions().items() if name in decodable))


IMAGE_EXTENSIONS = _readable_extensions()
LEFT_OUT_NAMED = 10  # the left-out files a listing names; the rest are counted
SKIPPED_IMAGES = "skipped_images"  # the key of a run's record of unreadable images in metrics.json, summary.json

# What PIL raises for a truncated, corrupt or absurdly large file.
_UNREADABLE = (OSError, SyntaxError, ValueError, Image.DecompressionBombError)
Loaded = TypeVar("Loaded")
# The full-scale value of each PIL mode of more than 8 bits per sample that Pillow cannot convert to RGB at its
# true values (it clips): 16-bit grey (PNG, TIFF), 32-bit integer "I" (16-bit PGM and PNG in older Pillows)
# and float "F", whose scale is taken as [0, 1]. A 16-bit RGB(A) PNG Pillow opens as 8-bit RGB(A) itself.
FULL_SCALE: dict[str, float] = {"I;16": 65535, "I;16B": 65535, "I;16L": 65535, "I;16N": 65535, "I": 65535, "F": 1.0}


class DataError(ValueError):
    """Data that cannot work (a bad folder, size or count); the one-line message names the value."""


class NoImagesError(DataError):
    """A folder that should hold images is missing, empty, or holds only unreadable files."""


class SkippedFile(NamedTuple):
    """An image that could not be read: its role (``content``, ``eval style``, ...), file and the reason.

    A named tuple, not a dataclass: it travels with a training batch from the loader workers to the main
    process, and Lightning's batch transfer rebuilds named tuples but refuses frozen dataclasses."""

    role: str
    path: Path
    reason: str


def _walk_files(root: Path) -> Iterator[Path]:
    """Every file under ``root`` in walk order but hidden ones: they are mostly the ``._name.jpg`` resource
    forks macOS leaves behind, which are not images."""
    for directory, subdirs, names in os.walk(root, followlinks=True):
        subdirs[:] = [d for d in subdirs if not d.startswith(".")]
        yield from (Path(directory, name) for name in names if not name.startswith("."))


def is_image_file(path: Path) -> bool:
    """Whether the name says a format Pillow decodes (the content is checked only when the file is read)."""
    return path.name.rpartition(".")[2].lower() in IMAGE_EXTENSIONS


def folder_problem(folder: str | Path) -> str | None:
    """Why ``folder`` cannot serve images ("does not exist", ...), or None; stops at the first image found,
    so a config check costs nothing on a folder of 80,000 images."""
    root = Path(folder).expanduser()
    if not root.is_dir():
        return "is not a folder" if root.exists() else "does not exist"
    if not any(is_image_file(path) for path in _walk_files(root)):
        return "has no images (no file of a format Pillow decodes: jpg, png, webp, gif, tif, bmp, ...)"
    return None


def list_images(folder: str | Path, role: str) -> list[Path]:
    """Every image under ``folder`` (recursively, symlinks followed), in a fixed order; the files left out
    (not of a format Pillow decodes) are named in one log line.

    The order is sorted so that a seeded index means the same file on every
    machine and every rank.
    """
    root = Path(folder).expanduser()
    files = sorted(_walk_files(root), key=str) if root.is_dir() else []
    found = [path for path in files if is_image_file(path)]
    if not found:
        raise NoImagesError(f"{role} folder {root} {folder_problem(root)}")
    left_out = [path.relative_to(root).as_posix() for path in files if not is_image_file(path)]
    if left_out:
        more = f" and {len(left_out) - LEFT_OUT_NAMED} more" if len(left_out) > LEFT_OUT_NAMED else ""
        log.warning(
            "%s folder %s: %d file(s) left out, not of a format Pillow decodes: %s%s",
            role, root, len(left_out), ", ".join(left_out[:LEFT_OUT_NAMED]), more,
        )  # fmt: skip
    return found


def _to_8_bit(image: Image.Image) -> Image.Image:
    """An image of more than 8 bits per sample (:data:`FULL_SCALE`) as 8-bit L (LA with its transparent
    value), each value scaled by 255 / full scale and rounded. Integer "I" values beyond 16 bits and float
    values outside [0, 1] have no known scale: a ValueError (the file is then skipped and named)."""
    values = np.asarray(image)
    low, high, full = values.min(), values.max(), FULL_SCALE[image.mode]
    if low < 0 or high > full:
        raise ValueError(f"mode {image.mode} values span {low}..{high}, beyond the 0..{full:g} scale they are read at")
    grey = Image.fromarray(np.rint(values * (255 / full)).astype(np.uint8), "L")
    transparent = image.info.get("transparency")
    if isinstance(transparent, (int, float)):
        grey.putalpha(Image.fromarray(np.where(values == transparent, 0, 255).astype(np.uint8), "L"))
    return grey


def to_rgb(image: Image.Image) -> Image.Image:
    """8-bit RGB of any PIL mode at its true values (an RGB image is returned itself, loaded, not copied).

    The one conversion every path uses (training, prepared folders, evaluation, stylize, the sample set).
    Pillow's own ``convert`` clips 16-bit and 32-bit grey to 255, so a 16-bit PNG would turn white; those
    modes are scaled first (:func:`_to_8_bit`). Transparent pixels are composited onto white, as a viewer
    shows them.
    """
    if image.mode in FULL_SCALE:
        image = _to_8_bit(image)
    has_alpha = "A" in image.getbands() or "transparency" in image.info
    if not has_alpha:
        if image.mode != "RGB":
            return image.convert("RGB")
        image.load()  # no copy of an RGB image, but decoded now: callers may close its file next
        return image
    rgba = image.convert("RGBA")
    background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(background, rgba).convert("RGB")


def is_upright(image: Image.Image) -> bool:
    """Whether the file's pixels are stored the way up they are shown: no EXIF (or XMP) orientation but 1,
    the tag Pillow's ``exif_transpose`` acts on. Reads the header only."""
    return image.getexif().get(ExifTags.Base.Orientation, 1) == 1


def open_rgb(path: Path, draft_size: int | None = None) -> Image.Image:
    """The decoded image as 8-bit RGB (:func:`to_rgb`), turned upright by its EXIF orientation as every
    photo viewer shows it; raises one of ``_UNREADABLE`` for a bad file.

    ``draft_size``: a JPEG is decoded at the smallest DCT scale (1/2, 1/4, 1/8) whose sides are both
    still >= ``draft_size`` (PIL's draft mode), which skips most of the decoding work; other formats
    decode as usual.
    """
    with Image.open(path) as image:
        if draft_size is not None:
            image.draft("RGB", (draft_size, draft_size))
        image.load()  # decode now: a truncated file fails here, not in a later transform
        ImageOps.exif_transpose(image, in_place=True)  # nothing to do (no copy) for an upright image
        return to_rgb(image)


class ImageReader:
    """Opens images of one folder as RGB, remembering the files it could not read.

    A file found unreadable is never tried again. Each skip is also kept in
    :attr:`new` until :meth:`take_new` hands it on: a loader worker's reader
    sends its skips with the item they happened in, and the run's
    :class:`SkippedImages`, in the main process, names each file once.
    """

    def __init__(self, role: str, total: int) -> None:
        self.role = role
        self.total = total
        self.unreadable: set[Path] = set()
        self.new: list[SkippedFile] = []

    def read(self, path: Path, draft_size: int | None = None) -> Image.Image | None:
        """The image as RGB (:func:`open_rgb`), or None when it cannot be decoded."""
        return self.attempt(path, lambda file: open_rgb(file, draft_size))

    def attempt(self, path: Path, opener: Callable[[Path], Loaded]) -> Loaded | None:
        """``opener(path)``, or None when it raises what PIL raises for a bad file; a path found unreadable
        before is not tried again."""
        if path in self.unreadable:
            return None
        try:
            return opener(path)
        except _UNREADABLE as error:
            self.skip(path, f"{type(error).__name__}: {error}")
            return None

    def skip(self, path: Path, reason: str) -> None:
        """Remember ``path`` as unreadable; stop when none is left."""
        self.unreadable.add(path)
        self.new.append(SkippedFile(self.role, path, reason))
        if len(self.unreadable) >= self.total:
            raise NoImagesError(f"all {self.total} {self.role} images are unreadable (last: {path})")

    def take_new(self) -> list[SkippedFile]:
        """The skips since the last call, handed on once."""
        new, self.new = self.new, []
        return new


class SkippedImages:
    """A run's record of the images it could not read: one log warning per file, however many workers,
    rounds or draws meet it, and the names and count for ``metrics.json`` and ``summary.json``."""

    def __init__(self) -> None:
        self.files: dict[Path, SkippedFile] = {}

    def add(self, skipped: Iterable[SkippedFile]) -> None:
        for item in skipped:
            if item.path not in self.files:
                self.files[item.path] = item
                log.warning(
                    "skipped unreadable %s image %s (%s); %d image(s) skipped in this run",
                    item.role, item.path, item.reason, len(self.files),
                )  # fmt: skip

    def entries(self) -> list[dict[str, str]]:
        """Each skipped file as ``{"file", "role", "reason"}``, in the order they were met."""
        return [{"file": str(item.path), "role": item.role, "reason": item.reason} for item in self.files.values()]


def merged_record(files: Iterable[dict[str, str]]) -> dict[str, Any]:
    """The record of skipped images, ``{"count": n, "files": [{"file", "role", "reason"}, ...]}`` sorted by
    file, from the entries of one or several records (DDP ranks, rounds): each file once, as first met."""
    unique: dict[str, dict[str, str]] = {}
    for entry in files:
        unique.setdefault(entry["file"], entry)
    return {"count": len(unique), "files": [unique[name] for name in sorted(unique)]}
