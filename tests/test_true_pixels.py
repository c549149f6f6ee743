"""Issue 22, points 6 and 7: a 16-bit image loads at its true values and an EXIF-rotated photo loads upright,
on every path an image takes: training crops (pil, draft, device), prepared folders, evaluation views, stylize's
input (tests/test_stylize.py checks the whole tool's output).

Each case compares a file with its *twin*, an 8-bit upright PNG of the same picture, through the same path:
a path that read the file otherwise (16-bit grey clipped to white, the rotated pixels as stored) differs from
its twin by far more than the equality asserted here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import ExifTags, Image, ImageOps

from lottery_style.core.config import Decode
from lottery_style.data.device_decode import collate_uncut, decode_batch
from lottery_style.data.images import open_rgb
from lottery_style.data.pairs import PairDataset, choose_readable
from lottery_style.data.prepare import prepare_folder
from lottery_style.data.prepared import read_prepared
from lottery_style.tools.stylize import read_image, to_model_input

LOAD, CROP, EVAL = 40, 24, 16
WIDTH, HEIGHT = 48, 72  # upright: a portrait
PATHS = ("pil", "draft", "device", "prepared", "eval", "stylize")


def upright_picture() -> np.ndarray:
    """uint8 [HEIGHT, WIDTH, 3]: smooth gradients that differ along each axis, so any turn or flip shows, and
    whose mean is about 127.6 (the issue's image)."""
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH]
    channels = [45.35 + 3.5 * x, 10 + 3.3 * y, 128 + 60 * np.sin(x / 7) * np.cos(y / 11)]
    return np.clip(np.stack(channels, -1), 0, 255).round().astype(np.uint8)


def loaded(path: Path, how: str, work: Path) -> torch.Tensor:
    """What path ``how`` makes of the one image ``path``, as float in [0, 1]: four items' training crops
    (prepared: sliced from a folder prepared from ``path``'s folder), the evaluation views, stylize's input."""
    if how in ("pil", "draft", "prepared"):
        prepared = None
        if how == "prepared":
            target = work / f"prepared-{path.parent.name}"
            prepare_folder(path.parent, target, LOAD, workers=1, progress=False)
            manifest = read_prepared(target)
            assert manifest is not None and manifest.sources() == [path] and not manifest.unreadable
            prepared = {"content": manifest.targets(), "style": manifest.targets()}
        dataset = PairDataset([path], [path], LOAD, CROP, seed=3, decode=Decode(how if how != "prepared" else "pil"),
                              prepared=prepared)  # fmt: skip
        return torch.stack([dataset.draw(g)[0].image for g in range(4)])
    if how == "device":
        dataset = PairDataset([path], [path], LOAD, CROP, seed=3, decode=Decode.device)
        return decode_batch(collate_uncut([dataset[g] for g in range(4)]), dataset, torch.device("cpu"))["content"]
    if how == "eval":
        _, views = choose_readable([path], 1, EVAL, (7, 0), "content", "test folder", crops=3, load_size=LOAD)
        return views.float() / 255
    assert how == "stylize"
    image = read_image(path, "content", skip=False)
    assert not isinstance(image, tuple)
    return to_model_input(image, None, 8)


def own_folder(root: Path, name: str) -> Path:
    """``root/<stem>/name``: each image alone in a folder, as a prepared folder is made from a folder."""
    path = root / Path(name).stem / name
    path.parent.mkdir(parents=True)
    return path


# ------------------------------------------------------------------ point 6: bit depth
def sixteen_bit(picture: np.ndarray, seed: int) -> np.ndarray:
    """uint16 grey whose true 8-bit value is ``picture``'s grey, with low bits that round away (|d| < 128.5)."""
    grey = picture[..., 0].astype(np.int64)
    noise = np.random.default_rng(seed).integers(-120, 121, grey.shape)
    return np.clip(grey * 257 + noise, 0, 65535).astype(np.uint16)


def write_grey16(root: Path) -> dict[str, Path]:
    """A 16-bit grey PNG of the picture's first channel and its twin, an 8-bit grey PNG, each in its own folder."""
    picture = upright_picture()
    files = {"twin": own_folder(root, "twin.png"), "png": own_folder(root, "grey16.png")}
    Image.fromarray(picture[..., 0], "L").save(files["twin"])
    Image.fromarray(sixteen_bit(picture, 0)).save(files["png"])
    return files


@pytest.fixture(scope="module")
def grey_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return write_grey16(tmp_path_factory.mktemp("sixteen"))


def test_the_16_bit_fixture_is_the_issues_image(grey_files: dict[str, Path]) -> None:
    with Image.open(grey_files["png"]) as image:
        assert image.mode == "I;16"
        assert np.asarray(image).mean() / 257 == pytest.approx(127.6, abs=0.5)
        assert np.asarray(image.convert("RGB")).mean() > 250  # what Pillow's own convert makes of it: white


@pytest.mark.parametrize("how", PATHS)
def test_a_16_bit_grey_png_loads_at_its_true_values_on_every_path(
    grey_files: dict[str, Path], how: str, tmp_path: Path
) -> None:
    sixteen, twin = (loaded(grey_files[key], how, tmp_path) for key in ("png", "twin"))
    assert torch.equal(sixteen, twin)  # the 16-bit values / 257, rounded, are exactly the twin's 8-bit values


@pytest.mark.parametrize(
    ("suffix", "mode"), [("png", "I;16"), ("tif", "I;16"), ("pgm", "I")]
)  # 16-bit PGM (and 16-bit PNG in older Pillows) opens as 32-bit "I"
def test_every_16_bit_grey_format_opens_at_its_true_values(suffix: str, mode: str, tmp_path: Path) -> None:
    picture = upright_picture()
    values = sixteen_bit(picture, 1)
    path = tmp_path / f"grey16.{suffix}"
    if suffix == "pgm":
        path.write_bytes(f"P5\n{WIDTH} {HEIGHT}\n65535\n".encode() + values.astype(">u2").tobytes())
    else:
        Image.fromarray(values).save(path)
    with Image.open(path) as image:
        assert image.mode == mode
    rgb = np.asarray(open_rgb(path))
    assert rgb.shape == (HEIGHT, WIDTH, 3) and np.array_equal(rgb[..., 0], picture[..., 0])
    assert np.array_equal(rgb[..., 0], rgb[..., 2])


# ------------------------------------------------------------------ point 7: EXIF orientation
# The transpose that stores an upright picture so that the orientation tag turns it back (PIL's exif_transpose
# applies ROTATE_270 for 6 and ROTATE_90 for 8).
STORED_AS = {6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270}


def write_rotated(root: Path, orientation: int) -> dict[str, Path]:
    """A JPEG whose pixels are stored turned (landscape) with the tag ``orientation`` that shows them upright,
    and its twin, the PNG of that JPEG's decoded pixels turned upright by hand; each in its own folder."""
    jpeg, twin = own_folder(root, f"rotated{orientation}.jpg"), own_folder(root, f"twin{orientation}.png")
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = orientation
    Image.fromarray(upright_picture()).transpose(STORED_AS[orientation]).save(jpeg, quality=95, exif=exif)
    with Image.open(jpeg) as image:
        assert image.size == (HEIGHT, WIDTH)  # stored as a landscape
        turn = Image.Transpose.ROTATE_270 if orientation == 6 else Image.Transpose.ROTATE_90
        image.convert("RGB").transpose(turn).save(twin)
    return {"jpeg": jpeg, "twin": twin}


@pytest.fixture(scope="module")
def rotated_files(tmp_path_factory: pytest.TempPathFactory) -> dict[int, dict[str, Path]]:
    root = tmp_path_factory.mktemp("exif")
    return {orientation: write_rotated(root, orientation) for orientation in STORED_AS}


@pytest.mark.parametrize("orientation", sorted(STORED_AS))
def test_the_rotated_jpeg_opens_upright(rotated_files: dict[int, dict[str, Path]], orientation: int) -> None:
    image = np.asarray(open_rgb(rotated_files[orientation]["jpeg"])).astype(float)
    assert image.shape == (HEIGHT, WIDTH, 3)
    assert np.abs(image - upright_picture()).mean() < 2  # JPEG's loss (0.8); turned or flipped it is 40-83
    with Image.open(rotated_files[orientation]["jpeg"]) as stored:
        assert np.array_equal(np.asarray(ImageOps.exif_transpose(stored)), np.asarray(open_rgb(rotated_files[orientation]["twin"])))


@pytest.mark.parametrize("how", PATHS)
@pytest.mark.parametrize("orientation", sorted(STORED_AS))
def test_an_exif_rotated_jpeg_loads_upright_on_every_path(
    rotated_files: dict[int, dict[str, Path]], orientation: int, how: str, tmp_path: Path
) -> None:
    rotated, twin = (loaded(rotated_files[orientation][key], how, tmp_path) for key in ("jpeg", "twin"))
    assert torch.equal(rotated, twin)

