"""The data package: listing, robust loading, seeded and resumable pairs, eval pairs, sample set, configs."""

from __future__ import annotations

import itertools
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
import torchvision.transforms.functional as TF
from omegaconf import OmegaConf
from omegaconf.errors import MissingMandatoryValue
from PIL import Image

from lottery_style.core.conf_dir import CONF_DIR
from lottery_style.core.config import DataConfig
from lottery_style.data import (
    DataError,
    NoImagesError,
    PairDataset,
    PairSampler,
    StylePairDataModule,
    list_images,
    sample_dirs,
)
from lottery_style.data import sample as sample_module
from lottery_style.data.images import merged_record, to_rgb
from tests.conftest import TINY

CONF = CONF_DIR / "data"


def noise(size: tuple[int, int], seed: int, channels: int = 3) -> Image.Image:
    """Random pixels: 1 channel is L, 3 RGB, 4 RGBA."""
    array = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], channels), dtype=np.uint8)
    return Image.fromarray(array.squeeze(-1) if channels == 1 else array)


def make_folder(folder: Path, count: int, seed: int, size: tuple[int, int] = (40, 30)) -> Path:
    for i in range(count):
        target = folder / ("nested" if i % 2 else "") / f"img{i}.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        noise(size, seed + i).save(target)
    return folder


@pytest.fixture
def awkward_folder(tmp_path: Path) -> Path:
    """Images the web really holds: truncated, CMYK, grayscale, transparent, tiny."""
    folder = tmp_path / "awkward"
    folder.mkdir()
    noise((40, 40), 1).save(folder / "a_truncated.jpg", quality=95)
    data = (folder / "a_truncated.jpg").read_bytes()
    (folder / "a_truncated.jpg").write_bytes(data[: len(data) // 2])
    noise((40, 30), 2).convert("CMYK").save(folder / "b_cmyk.JPG")
    noise((30, 40), 3, channels=1).save(folder / "c_gray.png")
    noise((40, 40), 4, channels=4).save(folder / "d_rgba.png")
    noise((10, 6), 5).save(folder / "e_tiny.bmp")
    (folder / "notes.txt").write_text("not an image")
    return folder


def data_cfg(content: Path | None, style: Path | None, **overrides) -> DataConfig:
    values = {
        "content_dir": str(content) if content else None,
        "style_dir": str(style) if style else None,
        "load_size": 24,
        "crop_size": 16,
        "batch_size": 2,
        "eval_contents": 2,
        "eval_styles": 2,
        "eval_size": 16,
        "eval_batch_size": 3,
        "grid_pairs": 3,
        "eval_seed": 7,
    }
    values.update(overrides)
    return OmegaConf.structured(DataConfig(**values))


def first_batches(datamodule: StylePairDataModule, count: int) -> list[dict[str, torch.Tensor]]:
    """The first batches as a model gets them (the datamodule's hook takes the skipped files off)."""
    loader = itertools.islice(iter(datamodule.train_dataloader()), count)
    return [datamodule.decoded(batch, torch.device("cpu")) for batch in loader]


# ---------------------------------------------------------------- listing and loading
def test_listing_is_recursive_sorted_and_filtered(awkward_folder: Path, tmp_path: Path) -> None:
    names = [p.name for p in list_images(awkward_folder, "content")]
    assert names == ["a_truncated.jpg", "b_cmyk.JPG", "c_gray.png", "d_rgba.png", "e_tiny.bmp"]
    nested = make_folder(tmp_path / "nested", 4, 0)
    assert [p.relative_to(nested).as_posix() for p in list_images(nested, "style")] == [
        "img0.png", "img2.png", "nested/img1.png", "nested/img3.png"
    ]  # fmt: skip


@pytest.mark.parametrize("kind", ["empty", "missing"])
def test_empty_or_missing_folder_fails_with_one_line(tmp_path: Path, kind: str) -> None:
    folder = tmp_path / "coco"
    if kind == "empty":
        (folder / "sub").mkdir(parents=True)
        (folder / "sub" / "readme.txt").write_text("no images here")
    with pytest.raises(NoImagesError) as error:
        list_images(folder, "content")
    message = str(error.value)
    assert "\n" not in message and str(folder) in message and message.startswith("content folder")
    assert isinstance(error.value, ValueError)
    datamodule = StylePairDataModule(data_cfg(folder, make_folder(tmp_path / "s", 3, 0)), steps_per_epoch=2, stream_seed=7)
    with pytest.raises(NoImagesError, match=str(folder)):
        datamodule.setup("fit")


def test_every_mode_becomes_rgb_and_transparency_turns_white() -> None:
    rgba = Image.new("RGBA", (2, 1), (10, 20, 30, 255))
    rgba.putpixel((1, 0), (200, 0, 0, 0))
    palette = Image.new("P", (2, 2))
    for image in (Image.new("CMYK", (2, 2)), Image.new("L", (2, 2)), Image.new("LA", (2, 2)), palette, rgba):
        assert to_rgb(image).mode == "RGB"
    assert to_rgb(rgba).getpixel((0, 0)) == (10, 20, 30)
    assert to_rgb(rgba).getpixel((1, 0)) == (255, 255, 255)


def test_deep_modes_convert_at_their_true_values_and_an_unknown_scale_is_refused() -> None:
    """Issue 22, point 6 at the helper every path uses: 16-bit grey (with its transparent value), float grey in
    [0, 1]; a 32-bit integer beyond 16 bits has no known scale and is refused with the values it spans."""
    sixteen = Image.fromarray(np.array([[0, 257 * 100 + 90, 65535, 1000]], dtype=np.uint16))
    assert sixteen.mode == "I;16"
    assert [to_rgb(sixteen).getpixel((x, 0)) for x in range(4)] == [(0, 0, 0), (100, 100, 100), (255, 255, 255), (4, 4, 4)]
    sixteen.info["transparency"] = 1000
    assert to_rgb(sixteen).getpixel((3, 0)) == (255, 255, 255) and to_rgb(sixteen).getpixel((1, 0)) == (100,) * 3
    floats = Image.fromarray(np.array([[0.0, 0.5, 1.0]], dtype=np.float32))
    assert floats.mode == "F" and [to_rgb(floats).getpixel((x, 0))[0] for x in range(3)] == [0, 128, 255]
    wide = Image.fromarray(np.array([[0, 70000]], dtype=np.int32))
    assert wide.mode == "I"
    with pytest.raises(ValueError, match=r"^mode I values span 0\.\.70000, beyond the 0\.\.65535 scale they are read at$"):
        to_rgb(wide)


def test_awkward_images_load_and_the_truncated_one_is_skipped_once_per_side(awkward_folder: Path) -> None:
    files = list_images(awkward_folder, "content")
    dataset = PairDataset(files, files, load_size=24, crop_size=16, seed=3)
    draws = [dataset.draw(g) for g in range(40)]
    # Each side found the bad file once, then remembered it: one skip per side, handed on once.
    skipped = dataset.take_skipped()
    assert [(s.role, s.path) for s in skipped] == [(role, awkward_folder / "a_truncated.jpg") for role in ("content", "style")]
    assert all(s.reason.startswith("OSError: ") for s in skipped) and dataset.take_skipped() == []
    chosen = {side.index for pair in draws for side in pair}
    assert 0 not in chosen and chosen == {1, 2, 3, 4}  # every readable file, tiny and CMYK included
    for pair in draws:
        for side in pair:
            assert side.image.shape == (3, 16, 16) and side.image.dtype == torch.float32
            assert 0.0 <= side.image.min() and side.image.max() <= 1.0
    again = [dataset.draw(g) for g in range(40)]
    assert dataset.take_skipped() == []  # replacements are deterministic and the file already known: no new skip
    assert all(torch.equal(a.image, b.image) for x, y in zip(draws, again) for a, b in zip(x, y))


def test_datamodule_batches_from_awkward_folder(awkward_folder: Path, tmp_path: Path) -> None:
    eval_dir = make_folder(tmp_path / "eval", 2, 50)
    cfg = data_cfg(awkward_folder, awkward_folder, eval_content_dir=str(eval_dir), eval_style_dir=str(eval_dir))
    datamodule = StylePairDataModule(cfg, steps_per_epoch=8, stream_seed=7)
    datamodule.setup("fit")
    batches = [datamodule.decoded(batch, torch.device("cpu")) for batch in datamodule.train_dataloader()]
    assert len(batches) == 8
    for batch in batches:
        assert set(batch) == {"content", "style"}
        for images in batch.values():
            assert images.shape == (2, 3, 16, 16) and 0.0 <= images.min() and images.max() <= 1.0


# ---------------------------------------------------------------- unreadable and left-out files (issue 22, point 8)
def test_every_format_pillow_decodes_is_listed_and_the_files_left_out_are_named(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "mixed"
    folder.mkdir()
    noise((20, 16), 0).save(folder / "a.png")
    noise((20, 16), 1).convert("P").save(folder / "b.gif")
    noise((20, 16), 2).save(folder / "c.tif")
    noise((20, 16), 3).save(folder / "d.ppm")
    (folder / "captions.txt").write_text("not an image")
    (folder / "features.h5").write_bytes(b"\x89HDF\r\n\x1a\n")  # a stub format: Pillow cannot decode it
    with caplog.at_level("WARNING", logger="lottery_style.data.images"):
        assert [p.name for p in list_images(folder, "style")] == ["a.png", "b.gif", "c.tif", "d.ppm"]
    assert [r.getMessage() for r in caplog.records] == [
        f"style folder {folder}: 2 file(s) left out, not of a format Pillow decodes: captions.txt, features.h5"
    ]
    draw = PairDataset([folder / "b.gif"], [folder / "b.gif"], load_size=16, crop_size=8, seed=0).draw(0)[0]
    square = Image.open(folder / "b.gif").convert("RGB").resize((16, 16), Image.Resampling.BILINEAR)
    assert torch.equal(draw.image, TF.to_tensor(square.crop((draw.left, draw.top, draw.left + 8, draw.top + 8))))


@pytest.fixture
def folders_with_unreadable(tmp_path: Path) -> dict[str, Path]:
    """A style folder with one truncated and one non-image file among a PNG and a GIF; separate eval folders."""
    content, style = make_folder(tmp_path / "c", 3, 0), make_folder(tmp_path / "s", 1, 10)
    noise((40, 30), 11).convert("P").save(style / "animated.gif")
    noise((40, 40), 12).save(style / "truncated.jpg", quality=95)
    whole = (style / "truncated.jpg").read_bytes()
    (style / "truncated.jpg").write_bytes(whole[: len(whole) // 2])
    (style / "broken.jpg").write_bytes(b"not a jpeg")
    return {"content": content, "style": style, "eval": make_folder(tmp_path / "e", 2, 20)}


def test_each_unreadable_file_is_warned_about_once_per_run_whatever_the_workers_and_fits(
    folders_with_unreadable: dict[str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    """Two loader workers and two fits (each fit makes new workers): each bad file is drawn by several items and
    both fits, yet named once, in the main process, and recorded with its role and reason."""
    folders = folders_with_unreadable
    cfg = data_cfg(folders["content"], folders["style"], num_workers=2, batch_size=4,
                   eval_content_dir=str(folders["eval"]), eval_style_dir=str(folders["eval"]))  # fmt: skip
    datamodule = StylePairDataModule(cfg, steps_per_epoch=6, stream_seed=7)
    datamodule.setup("fit")
    assert datamodule.style_files[0].name == "animated.gif"  # a GIF is a training image like any other
    with caplog.at_level("WARNING", logger="lottery_style.data.images"):
        for _fit in range(2):
            for batch in datamodule.train_dataloader():
                assert set(datamodule.decoded(batch, torch.device("cpu"))) == {"content", "style"}
    assert datamodule.train_set is not None
    drawn = [datamodule.train_set.draw(g)[1].index for g in range(24)]
    assert 0 in drawn, "the seed must draw the GIF"
    bad = [folders["style"] / "broken.jpg", folders["style"] / "truncated.jpg"]
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2, messages
    for message, path in zip(sorted(messages), bad):
        assert message.startswith(f"skipped unreadable style image {path} (")
    assert messages[0].endswith("; 1 image(s) skipped in this run") and messages[1].endswith("; 2 image(s) skipped in this run")
    record = merged_record(datamodule.skipped.entries())
    assert record["count"] == 2 and [(e["file"], e["role"]) for e in record["files"]] == [(str(p), "style") for p in bad]
    assert record["files"][0]["reason"].startswith("UnidentifiedImageError: ")
    assert record["files"][1]["reason"].startswith("OSError: ") and "truncated" in record["files"][1]["reason"]


def test_a_run_records_its_skipped_files_in_train_log_metrics_and_summary(
    folders_with_unreadable: dict[str, Path], tmp_path: Path
) -> None:
    """The CLI, two rounds, two loader workers: one warning line per bad file on the terminal (Hydra's console
    handler writes to stdout) and in train.log,
    the count and names in each round's metrics.json and in summary.json."""
    folders, run_dir = folders_with_unreadable, tmp_path / "run"
    command = [sys.executable, "-m", "lottery_style.train", *TINY, "pruning.rounds=1", "data=folders",
               f"data.content_dir={folders['content']}", f"data.style_dir={folders['style']}", "data.num_workers=2",
               f"data.eval_content_dir={folders['eval']}", f"data.eval_style_dir={folders['eval']}",
               f"hydra.run.dir={run_dir}"]  # fmt: skip
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, check=False, text=True, timeout=900,
                            env={**os.environ, "CI": "true"}, stdin=subprocess.DEVNULL)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    bad = [str(folders["style"] / "broken.jpg"), str(folders["style"] / "truncated.jpg")]
    log = (run_dir / "train.log").read_text()
    for path in bad:
        assert (result.stdout + result.stderr).count(f"skipped unreadable style image {path} (") == 1, result.stdout
        assert log.count(f"skipped unreadable style image {path} (") == 1
    assert f"2 unreadable image(s) skipped in this run, named in {run_dir / 'summary.json'}" in log
    for index in (0, 1):
        record = json.loads((run_dir / f"round_{index:02d}" / "metrics.json").read_text())["skipped_images"]
        assert record["count"] == 2 and [entry["file"] for entry in record["files"]] == bad
    summary = json.loads((run_dir / "summary.json").read_text())["skipped_images"]
    assert summary["count"] == 2 and [entry["file"] for entry in summary["files"]] == bad


# ---------------------------------------------------------------- determinism
def test_same_seed_same_batches_and_other_seed_differs(tmp_path: Path) -> None:
    content, style = make_folder(tmp_path / "c", 6, 0), make_folder(tmp_path / "s", 6, 100)

    def batches(seed: int) -> list[dict[str, torch.Tensor]]:
        datamodule = StylePairDataModule(data_cfg(content, style), steps_per_epoch=3, stream_seed=seed)
        datamodule.setup("fit")
        return first_batches(datamodule, 3)

    one, two, other = batches(7), batches(7), batches(8)
    assert all(torch.equal(a[k], b[k]) for a, b in zip(one, two) for k in a)
    assert not torch.equal(one[0]["content"], other[0]["content"])


def test_sampler_ranks_are_disjoint_and_epochs_move_on() -> None:
    ranks = [PairSampler(6, rank, 2) for rank in range(2)]
    epoch0 = [list(sampler) for sampler in ranks]
    assert epoch0 == [[0, 2, 4, 6, 8, 10], [1, 3, 5, 7, 9, 11]]
    for sampler in ranks:
        sampler.set_epoch(1)
    epoch1 = [list(sampler) for sampler in ranks]
    assert epoch1 == [[12, 14, 16, 18, 20, 22], [13, 15, 17, 19, 21, 23]]
    assert len(ranks[0]) == 6
    with pytest.raises(ValueError, match="rank 2"):
        PairSampler(6, 2, 2)


def test_epoch_changes_the_data_and_content_style_are_independent(tmp_path: Path) -> None:
    content, style = make_folder(tmp_path / "c", 5, 0), make_folder(tmp_path / "s", 5, 100)
    datamodule = StylePairDataModule(data_cfg(content, style), steps_per_epoch=2, stream_seed=7)
    datamodule.setup("fit")
    loader = datamodule.train_dataloader()
    epoch0 = list(loader)
    loader.sampler.set_epoch(1)
    epoch1 = list(loader)
    assert not torch.equal(epoch0[0]["content"], epoch1[0]["content"])

    assert datamodule.train_set is not None
    draws = [datamodule.train_set.draw(g) for g in range(60)]
    pairs = {(c.index, s.index) for c, s in draws}
    contents = {c for c, _ in pairs}
    # Every content index meets several style indices: the style draw is not a function of the content draw.
    assert contents == set(range(len(datamodule.content_files)))
    assert all(len({s for c2, s in pairs if c2 == c}) >= 2 for c in contents)
    assert len({(c.top, c.left) for c, _ in draws}) > 5 and any((c.top, c.left) != (s.top, s.left) for c, s in draws)


def test_load_state_dict_resumes_mid_epoch_and_rolls_over_at_epoch_end(tmp_path: Path) -> None:
    datamodule = StylePairDataModule(data_cfg(make_folder(tmp_path / "c", 4, 0), make_folder(tmp_path / "s", 4, 9)), 3, stream_seed=7)
    datamodule.setup("fit")
    loader = datamodule.train_dataloader()
    loader.load_state_dict({"epoch": 4, "batches": 1})
    assert list(loader.sampler) == [26, 27, 28, 29]  # epoch 4 = 24..29, after the first batch of 2
    assert loader.sampler.start == 0  # the offset applies to one pass only
    loader.load_state_dict({"epoch": 4, "batches": 3})
    assert next(iter(loader.sampler)) == 30
    iterator = iter(loader)
    next(iterator)
    assert loader.state_dict() == {"epoch": 5, "batches": 1}


class _Recorder(L.LightningModule):
    """Remembers a fingerprint of every batch it trains on."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.seen: list[float] = []

    def training_step(self, batch: dict[str, torch.Tensor], index: int) -> torch.Tensor:
        assert set(batch) == {"content", "style"}  # the datamodule's hook took the skipped files off
        self.seen.append(batch["content"].sum().item() + 1_000 * batch["style"].sum().item())
        return self.weight * batch["content"].mean()

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


@pytest.mark.parametrize("stop", [4, 6])  # mid-epoch, and exactly at an epoch boundary
def test_lightning_resume_sees_the_same_batches(tmp_path: Path, stop: int) -> None:
    cfg = data_cfg(make_folder(tmp_path / "c", 4, 0), make_folder(tmp_path / "s", 4, 9), load_size=12, crop_size=8)

    def fit(max_steps: int, checkpoints: Path | None = None, resume: Path | None = None) -> list[float]:
        from lightning.pytorch.callbacks import ModelCheckpoint

        callbacks = [ModelCheckpoint(checkpoints, save_last=True, save_top_k=0, every_n_train_steps=stop)]
        trainer = L.Trainer(
            max_steps=max_steps, accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
            enable_model_summary=False, use_distributed_sampler=False, callbacks=callbacks if checkpoints else None,
            enable_checkpointing=checkpoints is not None, default_root_dir=tmp_path,
        )  # fmt: skip
        model = _Recorder()
        trainer.fit(model, datamodule=StylePairDataModule(cfg, steps_per_epoch=3, stream_seed=7), ckpt_path=resume)
        return model.seen

    straight = fit(8)
    head = fit(stop, checkpoints=tmp_path / "ckpt")
    tail = fit(8, checkpoints=tmp_path / "ckpt", resume=tmp_path / "ckpt" / "last.ckpt")
    assert len(head) == stop and head + tail == straight


def test_crop_larger_than_load_fails_in_one_line(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"^data.load_size=16 is smaller than data.crop_size=32: [^\n]*$"):
        StylePairDataModule(data_cfg(tmp_path, tmp_path, load_size=16, crop_size=32), steps_per_epoch=1, stream_seed=7)


# ---------------------------------------------------------------- evaluation pairs
def test_held_out_eval_pairs_are_fixed_complete_and_unseen(tmp_path: Path) -> None:
    content, style = make_folder(tmp_path / "c", 6, 0), make_folder(tmp_path / "s", 7, 100)
    cfg = data_cfg(content, style, eval_contents=2, eval_styles=3)
    # Replicates (other stream seeds) are judged on the same pairs.
    one, two = StylePairDataModule(cfg, 2, stream_seed=7), StylePairDataModule(cfg, 2, stream_seed=8)
    one.setup("fit")
    two.setup("test")
    assert one.eval_pairs == two.eval_pairs
    assert len(one.eval_pairs) == 6 and set(one.eval_pairs) == set(
        itertools.product(map(str, one.eval_content_files), map(str, one.eval_style_files))
    )
    assert not set(one.eval_content_files) & set(one.content_files) and len(one.content_files) == 4
    assert not set(one.eval_style_files) & set(one.style_files) and len(one.style_files) == 4
    batches = list(one.test_dataloader())
    assert [len(b["content"]) for b in batches] == [3, 3]
    assert batches[0]["content"].shape == (3, 3, 16, 16) and batches[0]["style"].dtype == torch.float32
    grid = one.grid_batch()
    assert torch.equal(grid["content"], batches[0]["content"]) and torch.equal(grid["style"], batches[0]["style"])
    # The grid's first pairs show different contents and different styles.
    first = one.eval_pairs[:2]
    assert first[0][0] != first[1][0] and first[0][1] != first[1][1]


def test_eval_folders_leave_training_files_whole(tmp_path: Path) -> None:
    content, style = make_folder(tmp_path / "c", 3, 0), make_folder(tmp_path / "s", 3, 100)
    eval_content, eval_style = make_folder(tmp_path / "ec", 4, 200, (20, 50)), make_folder(tmp_path / "es", 2, 300)
    cfg = data_cfg(content, style, eval_content_dir=str(eval_content), eval_style_dir=str(eval_style))
    datamodule = StylePairDataModule(cfg, 2, stream_seed=7)
    datamodule.setup("test")
    assert len(datamodule.content_files) == 3 and len(datamodule.style_files) == 3
    for content_file, style_file in datamodule.eval_pairs:
        assert Path(content_file).is_relative_to(eval_content) and Path(style_file).is_relative_to(eval_style)
    assert next(iter(datamodule.test_dataloader()))["content"].shape[-2:] == (16, 16)  # 20x50 made square


def test_eval_crops_multiply_the_pairs_with_fixed_views(tmp_path: Path) -> None:
    content, style = make_folder(tmp_path / "c", 5, 0), make_folder(tmp_path / "s", 5, 100)
    cfg = data_cfg(content, style, eval_crops=3, eval_size=16, eval_load_size=24)
    one, two = StylePairDataModule(cfg, 2, stream_seed=7), StylePairDataModule(cfg, 2, stream_seed=8)
    one.setup("test")
    two.setup("test")
    assert one.eval_set is not None and two.eval_set is not None
    assert one.eval_set.contents.shape == (6, 3, 16, 16) and len(one.eval_set) == 36  # (2 images x 3 views)^2
    assert torch.equal(one.eval_set.contents, two.eval_set.contents) and one.eval_pairs == two.eval_pairs
    views = one.eval_set.contents[:3]
    assert len(set(one.eval_content_files[:3])) == 1 and not torch.equal(views[0], views[1])
    assert len(one.content_files) == 3  # the held-out images stay out of training, once each
    with pytest.raises(DataError, match=r"^data.eval_load_size=8 is smaller than data.eval_size=16"):
        StylePairDataModule(data_cfg(content, style, eval_crops=3, eval_size=16, eval_load_size=8), 2, stream_seed=7)


def test_eval_folder_inside_the_training_folder_never_trains(tmp_path: Path) -> None:
    content, style = make_folder(tmp_path / "coco", 3, 0), make_folder(tmp_path / "s", 3, 100)
    test40 = make_folder(content / "test40", 4, 200)  # listed recursively with the training images
    cfg = data_cfg(content, style, eval_content_dir=str(test40), eval_contents=2)
    datamodule = StylePairDataModule(cfg, 2, stream_seed=7)
    datamodule.setup("fit")
    assert len(list_images(content, "content")) == 7
    assert not {p.resolve() for p in datamodule.content_files} & {p.resolve() for p in list_images(test40, "eval")}
    assert len(datamodule.content_files) == 3  # every test40 image is out, the two chosen ones and the others


def test_too_few_images_to_hold_out_fails_in_one_line(tmp_path: Path) -> None:
    content, style = make_folder(tmp_path / "c", 2, 0), make_folder(tmp_path / "s", 5, 100)
    with pytest.raises(NoImagesError, match=rf"^content folder {content} has 2 images, all held out for evaluation"):
        StylePairDataModule(data_cfg(content, style), 2, stream_seed=7).setup("fit")
    with pytest.raises(NoImagesError, match=rf"^content folder {content} has 2 images, 3 needed"):
        StylePairDataModule(data_cfg(content, style, eval_contents=3), 2, stream_seed=7).setup("fit")


# ---------------------------------------------------------------- sample set and configs
def test_sample_set_builds_offline_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("the sample set must not touch the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setenv("LOTTERY_STYLE_CACHE", str(tmp_path / "cache"))
    content, style = sample_dirs()
    assert content == tmp_path / "cache" / "sample" / "content"
    assert len(list_images(content, "content")) == 8 and len(list_images(style, "style")) == 8
    assert {Image.open(p).mode for p in list_images(content, "content")} == {"RGB"}
    assert not [p for p in (tmp_path / "cache").iterdir() if p.name != "sample"]  # no temp folders left

    def must_not_rebuild(folder: Path) -> None:
        raise AssertionError("a complete sample set is rebuilt")

    monkeypatch.setattr(sample_module, "_write_set", must_not_rebuild)
    assert sample_dirs() == (content, style)


def test_data_configs_match_the_schema() -> None:
    schema = OmegaConf.structured(DataConfig)
    sample = OmegaConf.merge(schema, OmegaConf.load(CONF / "sample.yaml"))
    assert (sample.name, sample.load_size, sample.crop_size, sample.eval_contents * sample.eval_styles) == (
        "sample", 128, 64, 4
    )  # fmt: skip
    StylePairDataModule(sample, steps_per_epoch=1, stream_seed=7)  # sizes pass validation
    folders = OmegaConf.merge(schema, OmegaConf.load(CONF / "folders.yaml"))
    assert (folders.load_size, folders.crop_size, folders.eval_contents, folders.eval_styles) == (512, 256, 40, 100)
    with pytest.raises(MissingMandatoryValue):
        _ = folders.content_dir
    # The schema's own default is "unset" too, so `data=folders` without a folder cannot fall back on the sample set.
    for cfg in (folders, DataConfig()):
        with pytest.raises(DataError, match=r"^data.content_dir is not set: [^\n]*$"):
            StylePairDataModule(cfg, steps_per_epoch=1, stream_seed=7)
