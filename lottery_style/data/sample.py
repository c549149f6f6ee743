"""A small content/style set made from the images scikit-image ships, so the quickstart needs no download.

Only images inside the installed wheel are used: several ``skimage.data``
functions (eagle, lily, skin, ...) fetch their file over the network through
pooch and would break an offline first run. The set is written once as PNGs
into a cache folder and reused; it is built in a temporary folder and renamed
into place, so an interrupted build, or DDP ranks building at the same time,
never leave a half-written set behind.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image
from skimage import data

from lottery_style.core.atomic import atomic_write, folder_mode
from lottery_style.data.images import to_rgb

# Photographs (some grayscale) for content.
CONTENT_IMAGES: dict[str, Callable[[], np.ndarray]] = {
    "astronaut": data.astronaut,
    "camera": data.camera,
    "chelsea": data.chelsea,
    "coffee": data.coffee,
    "coins": data.coins,
    "moon": data.moon,
    "motorcycle": lambda: data.stereo_motorcycle()[0],
    "rocket": data.rocket,
}
# Textures and colourful pictures for style.
STYLE_IMAGES: dict[str, Callable[[], np.ndarray]] = {
    "brick": data.brick,
    "colorwheel": data.colorwheel,
    "grass": data.grass,
    "gravel": data.gravel,
    "hubble_deep_field": data.hubble_deep_field,
    "immunohistochemistry": data.immunohistochemistry,
    "logo": data.logo,
    "retina": data.retina,
}
MAX_SIDE = 512  # larger originals are shrunk once here rather than at every training step
CACHE_ENV = "LOTTERY_STYLE_CACHE"


def cache_root() -> Path:
    """``$LOTTERY_STYLE_CACHE``, else ``~/.cache/lottery_style``."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "lottery_style").expanduser()


def _is_complete(folder: Path) -> bool:
    expected = [("content", CONTENT_IMAGES), ("style", STYLE_IMAGES)]
    return all((folder / role / f"{name}.png").is_file() for role, images in expected for name in images)


def _as_rgb_image(array: np.ndarray) -> Image.Image:
    """RGB PIL image of a uint8 skimage array (grayscale, RGB or RGBA), longer side at most MAX_SIDE."""
    image = to_rgb(Image.fromarray(array))
    image.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.LANCZOS)
    return image


def _write_set(folder: Path) -> None:
    for role, images in (("content", CONTENT_IMAGES), ("style", STYLE_IMAGES)):
        (folder / role).mkdir(parents=True)
        for name, load in images.items():
            image = _as_rgb_image(load())
            atomic_write(folder / role / f"{name}.png", lambda handle, image=image: image.save(handle, format="PNG"))


def sample_dirs(root: Path | None = None) -> tuple[Path, Path]:
    """The sample set's (content, style) folders, building the set first if it is not complete."""
    folder = (root or cache_root()) / "sample"
    if not _is_complete(folder):
        folder.parent.mkdir(parents=True, exist_ok=True)
        building = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".sample-building-"))
        building.chmod(folder_mode())  # mkdtemp's 0700 would become the set's own mode at the rename
        try:
            _write_set(building)
            if folder.exists() and not _is_complete(folder):  # a stale set from an older image list
                stale = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".sample-stale-"))
                os.replace(folder, stale / "sample")
                shutil.rmtree(stale, ignore_errors=True)
            try:
                os.rename(building, folder)
            except OSError:
                if not _is_complete(folder):  # not just another process finishing first
                    raise
        finally:
            shutil.rmtree(building, ignore_errors=True)
    return folder / "content", folder / "style"
