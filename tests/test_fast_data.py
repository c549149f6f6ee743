"""Issue 17's fast data paths: the crop-box resize, JPEG draft mode and prepared folders sample as before."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision.transforms.functional as TF
from omegaconf import OmegaConf
from PIL import Image

from lottery_style.cli import main as cli_main
from lottery_style.core.config import DataConfig, Decode
from lottery_style.data import DataError, PairDataset, StylePairDataModule, list_images
from lottery_style.data.crops import resized_crop
from lottery_style.data.prepare import prepare_folder
from lottery_style.data.prepared import MANIFEST, read_prepared
from lottery_style.tickets.identity import is_result_key
from tests.conftest import compose_train

LOAD, CROP = 64, 32
# Draft mode decodes these 200x150 JPEGs at 1/2 scale (100x75 >= 64) instead of resizing from full size:
# on smooth photo-like images its crops differ from today's by at most this much per pixel on average.
DRAFT_MEAN_ABS_TOLERANCE = 2 / 255


def photo(size: tuple[int, int], seed: int) -> Image.Image:
    """Smooth gradients with a little noise: closer to a photo than pure noise, which no resampling preserves."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0 : size[1], 0 : size[0]] / max(size)
    phase = rng.uniform(0, 6, 3)
    channels = [127 + 100 * np.sin(6 * x + phase[c]) * np.cos(4 * y - phase[c]) for c in range(3)]
    array = np.stack(channels, -1) + rng.normal(0, 4, (size[1], size[0], 3))
    return Image.fromarray(np.clip(array, 0, 255).astype(np.uint8))


def jpeg_folder(folder: Path, count: int, seed: int, size: tuple[int, int] = (200, 150)) -> Path:
    for i in range(count):
        target = folder / ("sub" if i % 2 else "") / f"img{i}.jpg"
        target.parent.mkdir(parents=True, exist_ok=True)
        photo(size, seed + i).save(target, quality=90)
    return folder


def todays_crop(path: Path, top: int, left: int) -> torch.Tensor:
    """The sampling before issue 17, verbatim: full decode, whole-image square resize, crop."""
    image = Image.open(path).convert("RGB")
    image = TF.resize(image, [LOAD, LOAD], interpolation=TF.InterpolationMode.BILINEAR)
    return TF.to_tensor(TF.crop(image, top, left, CROP, CROP))


def data_cfg(content: Path, style: Path, **overrides: object) -> DataConfig:
    values: dict[str, object] = {"content_dir": str(content), "style_dir": str(style), "load_size": LOAD,
                                 "crop_size": CROP, "batch_size": 2, "eval_contents": 1, "eval_styles": 1,
                                 "eval_size": 16, "eval_seed": 7}  # fmt: skip
    values.update(overrides)
    return OmegaConf.structured(DataConfig(**values))


@pytest.mark.parametrize("size", [(640, 480), (1600, 1200), (37, 53), (98, 153)])
def test_crop_box_resize_is_the_full_resize_within_one_level(size: tuple[int, int]) -> None:
    """Draft mode's second shortcut: equal where Pillow resamples box and whole image in the same pass
    order (the landscape sizes here), one level off on some pixels where it does not."""
    image = photo(size, 3)
    full = np.asarray(image.resize((LOAD, LOAD), Image.Resampling.BILINEAR)).astype(int)
    for top, left in itertools.product((0, 5, LOAD - CROP), (0, 7, LOAD - CROP)):
        crop = np.asarray(resized_crop(image, LOAD, top, left, CROP)).astype(int)
        difference = np.abs(crop - full[top : top + CROP, left : left + CROP]).max()
        assert difference == 0 if size[0] > size[1] else difference <= 1


@pytest.fixture
def folders(tmp_path: Path) -> tuple[Path, Path]:
    content, style = jpeg_folder(tmp_path / "content", 5, 0), jpeg_folder(tmp_path / "style", 4, 50)
    (style / "broken.jpg").write_bytes(b"not a jpeg")  # drawn by some items: replaced by the next draw
    return content, style


def draws(dataset: PairDataset, count: int = 24) -> list[tuple]:
    return [dataset.draw(g) for g in range(count)]


def test_every_path_draws_todays_files_and_positions_with_its_stated_pixels(
    folders: tuple[Path, Path], tmp_path: Path
) -> None:
    content, style = (list_images(folder, role) for folder, role in zip(folders, ("content", "style")))
    targets = {}
    for role, folder, files in zip(("content", "style"), folders, (content, style)):
        prepare_folder(folder, tmp_path / f"prepared-{role}", LOAD, workers=1, progress=False)
        prepared_folder = read_prepared(tmp_path / f"prepared-{role}")
        assert prepared_folder is not None and prepared_folder.sources() == files
        targets[role] = prepared_folder.targets()
    datasets = [
        PairDataset(content, style, LOAD, CROP, seed=5, decode=Decode.pil),
        PairDataset(content, style, LOAD, CROP, seed=5, decode=Decode.draft),
        PairDataset(content, style, LOAD, CROP, seed=5, prepared=targets),
    ]
    pil, draft, prepared = (draws(dataset) for dataset in datasets)
    broken = folders[1] / "broken.jpg"
    for dataset in datasets:  # drawn, skipped and replaced by the next draw on every path
        assert dataset.sources["style"].reader.unreadable == {broken}  # type: ignore[attr-defined]
    for today, fast, sliced in zip(pil, draft, prepared):
        for role, files, a, b, c in zip(("content", "style"), (content, style), today, fast, sliced):
            assert (a.index, a.top, a.left) == (b.index, b.top, b.left) == (c.index, c.top, c.left)
            reference = todays_crop(files[a.index], a.top, a.left)
            assert torch.equal(a.image, reference) and torch.equal(c.image, reference)  # pil and prepared: equal
            assert b.image.shape == reference.shape
            assert (b.image - reference).abs().mean() <= DRAFT_MEAN_ABS_TOLERANCE, role


def test_preparation_is_resumable_and_counts_bad_files(folders: tuple[Path, Path], tmp_path: Path) -> None:
    source, target = folders[1], tmp_path / "prepared"
    first = prepare_folder(source, target, LOAD, workers=2, progress=False)
    assert (first.written, first.already, first.unreadable) == (4, 0, 1)
    manifest = json.loads((target / MANIFEST).read_text())
    assert manifest["files"] == [p.relative_to(source).as_posix() for p in list_images(source, "style")]
    assert list(manifest["unreadable"]) == ["broken.jpg"] and manifest["complete"] and manifest["size"] == LOAD
    written = target / "img0.jpg.npy"
    stamp = (target / "img2.jpg.npy").stat().st_mtime_ns
    written.unlink()  # as if interrupted before this file
    again = prepare_folder(source, target, LOAD, workers=1, progress=False)
    assert (again.written, again.already, again.unreadable) == (1, 3, 1)
    assert (target / "img2.jpg.npy").stat().st_mtime_ns == stamp and written.is_file()
    array = np.load(written)
    expected = np.asarray(
        Image.open(source / "img0.jpg").convert("RGB").resize((LOAD, LOAD), Image.Resampling.BILINEAR)
    )
    assert array.dtype == np.uint8 and np.array_equal(array, expected)
    with pytest.raises(DataError, match=rf"^--size 128 differs from {target}'s size {LOAD}: [^\n]*$"):
        prepare_folder(source, target, 128, workers=1, progress=False)
    with pytest.raises(DataError, match=rf"^DST {source / 'prepared'} lies inside SRC {source}: [^\n]*$"):
        prepare_folder(source, source / "prepared", LOAD, workers=1, progress=False)
    manifest["format"] = 1  # prepared before images were turned upright and 16-bit ones scaled: not reused
    (target / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(DataError, match=rf"^{target / MANIFEST} has format=1: expected 2 [^\n]*; delete {target} and"):
        prepare_folder(source, target, LOAD, workers=1, progress=False)


def batches(cfg: DataConfig, count: int = 3) -> tuple[list[dict[str, torch.Tensor]], StylePairDataModule]:
    datamodule = StylePairDataModule(cfg, steps_per_epoch=count, stream_seed=11)
    datamodule.setup("fit")
    loader = itertools.islice(iter(datamodule.train_dataloader()), count)
    return [datamodule.decoded(batch, torch.device("cpu")) for batch in loader], datamodule


def test_datamodule_reads_a_prepared_folder_like_its_source(folders: tuple[Path, Path], tmp_path: Path) -> None:
    content, style = folders
    prepared = tmp_path / "prepared-style"
    assert cli_main(["prepare-data", str(style), str(prepared), "--size", str(LOAD), "--workers", "1", "--quiet"]) == 0
    (source_batches, source_dm), (prepared_batches, prepared_dm) = (
        batches(data_cfg(content, style)),
        batches(data_cfg(content, prepared)),
    )
    assert all(torch.equal(a[k], b[k]) for a, b in zip(source_batches, prepared_batches) for k in a)
    # Evaluation reads the original files, held out of the same listing.
    assert prepared_dm.eval_pairs == source_dm.eval_pairs and prepared_dm.style_files == source_dm.style_files


def test_prepared_folder_of_another_size_or_unfinished_or_with_draft_fails_in_one_line(
    folders: tuple[Path, Path], tmp_path: Path
) -> None:
    content, style = folders
    prepared = tmp_path / "p"
    prepare_folder(style, prepared, 128, workers=1, progress=False)
    with pytest.raises(
        DataError,
        match=rf"^data.style_dir={prepared} was prepared at size 128 but data.load_size={LOAD}: expected data.load_size=128, [^\n]*$",
    ):
        batches(data_cfg(content, prepared))
    with pytest.raises(
        DataError,
        match=rf"^data.decode=draft does not apply to data.style_dir={prepared}, [^\n]*expected data.decode=pil$",
    ):
        batches(data_cfg(content, prepared, load_size=128, decode="draft"))
    manifest = json.loads((prepared / MANIFEST).read_text())
    (prepared / MANIFEST).write_text(json.dumps({**manifest, "complete": False}))
    with pytest.raises(
        DataError, match=r"^data.style_dir=\S+ is a prepared folder whose preparation has not finished [^\n]*$"
    ):
        batches(data_cfg(content, prepared, load_size=128))


def test_decode_composes_and_defines_the_result() -> None:
    cfg = compose_train(
        ["data=folders", "data.content_dir=/c", "data.style_dir=/s", "data.decode=draft", "hardware=gpu"]
    )
    assert cfg.data.decode == Decode.draft and cfg.data.load_size == 512
    assert compose_train([]).data.decode == Decode.pil
    assert is_result_key("data.decode") and is_result_key("data.content_dir")
