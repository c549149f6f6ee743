"""``data.decode=device`` (issue 17): JPEGs decoded, resized and cut in batches on the training device.

There is no GPU here, so every test runs the path's CPU equivalent: the same code with device cpu.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from lottery_style.core.config import Decode
from lottery_style.data import DataError, PairDataset, StylePairDataModule, list_images
from lottery_style.data.device_decode import UncutBatch, collate_uncut, decode_batch
from lottery_style.data.prepare import prepare_folder
from lottery_style.engine.lottery import LotteryRun
from lottery_style.engine.validation import check_image_folders
from lottery_style.tickets.identity import identity
from lottery_style.tickets.paths import round_dir
from tests.conftest import TINY, compose_train
from tests.test_ddp import metrics, run_cli
from tests.test_fast_data import CROP, LOAD, data_cfg, jpeg_folder, photo

CPU = torch.device("cpu")
# Measured on these folders (photo-like 200x150 JPEGs and a PNG, load 64, crop 32; 6 batches of 4 pairs, 147,456
# values): |device - pil| is 0.124 level of 255 on average and 1 level at most (87.6% of values equal). The decoded
# pixels are PIL's (both libjpeg-turbo); the resize differs by PIL's fixed-point arithmetic and its rounding to uint8
# between its two passes.
MEAN_ABS_TOLERANCE = 0.2 / 255
MAX_ABS_TOLERANCE = 1 / 255 + 1e-6


@pytest.fixture
def folders(tmp_path: Path) -> tuple[Path, Path]:
    """Contents: JPEGs and a PNG (decoded in the worker). Styles: JPEGs, a file that is no image (rejected by
    the worker's header parse) and a truncated JPEG (its header parses; it fails only when decoded)."""
    content, style = jpeg_folder(tmp_path / "content", 5, 0), jpeg_folder(tmp_path / "style", 4, 50)
    photo((160, 210), 9).save(content / "portrait.png")
    (style / "broken.jpg").write_bytes(b"not a jpeg")
    whole = (style / "img0.jpg").read_bytes()
    (style / "truncated.jpg").write_bytes(whole[: len(whole) // 2])
    return content, style


def loader_batches(cfg: object, count: int) -> tuple[list[object], StylePairDataModule]:
    datamodule = StylePairDataModule(cfg, steps_per_epoch=count, stream_seed=11)
    datamodule.setup("fit")
    return list(iter(datamodule.train_dataloader())), datamodule


def test_device_decode_draws_pils_files_and_positions_with_pixels_within_one_level(folders: tuple[Path, Path]) -> None:
    """Six batches through the loader: every side of every item is pil's file at pil's crop position (the items
    whose truncated file is re-drawn after the decode included), and its pixels differ by at most one level."""
    (pil_batches, pil_dm), (uncut_batches, device_dm) = (
        loader_batches(data_cfg(*folders, batch_size=4, decode=decode), count=6) for decode in ("pil", "device")
    )
    assert device_dm.train_set is not None and pil_dm.train_set is not None
    truncated = folders[1] / "truncated.jpg"
    differences = []
    for uncut, reference in zip(uncut_batches, pil_batches, strict=True):
        assert isinstance(uncut, UncutBatch)
        draws = [pil_dm.train_set.draw(g) for g in uncut.indices]
        for side, role in enumerate(("content", "style")):
            files = device_dm.train_set.files[role]
            uncut_side = getattr(uncut, role)
            for draw, file, position in zip((d[side] for d in draws), uncut_side.files, uncut_side.positions):
                if files[file] != truncated:  # re-drawn after the decode: the pixels below say where
                    assert (file, position) == (draw.index, (draw.top, draw.left))
        decoded = device_dm.decoded(uncut, CPU)
        reference = pil_dm.decoded(reference, CPU)
        for role in ("content", "style"):
            assert decoded[role].shape == reference[role].shape == (4, 3, CROP, CROP)
            differences.append((decoded[role] - reference[role]).abs().flatten())
    difference = torch.cat(differences)
    assert difference.mean() <= MEAN_ABS_TOLERANCE and difference.max() <= MAX_ABS_TOLERANCE
    for datamodule in (pil_dm, device_dm):  # skipped on both paths, drawn in these batches, recorded once each
        assert datamodule.train_set.sources["style"].reader.unreadable == {folders[1] / "broken.jpg", truncated}
        assert sorted((e["file"], e["role"]) for e in datamodule.skipped.entries()) == [
            (str(folders[1] / "broken.jpg"), "style"), (str(truncated), "style")
        ]  # fmt: skip


def test_a_truncated_jpeg_is_skipped_counted_once_and_replaced_by_pils_draw(folders: tuple[Path, Path]) -> None:
    """Its header parses in the worker; the batched decode fails, each file is decoded alone, the truncated one is
    skipped once (handed on for the run's record), and its item's style side is re-drawn to pil's replacement."""
    content, style = (list_images(folder, role) for folder, role in zip(folders, ("content", "style")))
    pil = PairDataset(content, style, LOAD, CROP, seed=5, decode=Decode.pil)
    device = PairDataset(content, style, LOAD, CROP, seed=5, decode=Decode.device)
    truncated = style.index(folders[1] / "truncated.jpg")
    items = [device[g] for g in range(40)]
    pil_styles = [pil.draw(g)[1].image for g in range(40)]
    hits = [g for g, (_, _, style_draw, _) in enumerate(items) if style_draw.index == truncated]
    assert len(hits) >= 2, "the seed must draw the truncated file at least twice in these items"
    for nth, hit in enumerate(hits[:2]):  # the batches of 4 holding its first two draws
        first = hit // 4 * 4
        decoded = decode_batch(collate_uncut(items[first : first + 4]), device, CPU)
        skipped = [s for s in device.take_skipped() if s.path == style[truncated]]
        if nth == 0:
            assert len(skipped) == 1 and "RuntimeError" in skipped[0].reason and "truncated" in skipped[0].reason
        else:
            assert skipped == []  # known now: skipped without being handed on again
        reference = torch.stack(pil_styles[first : first + 4])
        assert (decoded["style"] - reference).abs().max() <= MAX_ABS_TOLERANCE
    assert style[truncated] in device.sources["style"].reader.unreadable


@pytest.mark.parametrize(("hardware", "strategy"), [("gpu", "auto"), ("ddp", "ddp")])
def test_the_gpu_presets_compose_with_device_decode_and_run_its_cpu_equivalent(
    hardware: str, strategy: str, folders: tuple[Path, Path]
) -> None:
    overrides = [f"hardware={hardware}", "data=folders", f"data.content_dir={folders[0]}",
                 f"data.style_dir={folders[1]}", "data.num_workers=0", f"data.load_size={LOAD}",
                 f"data.crop_size={CROP}", "data.eval_contents=1", "data.eval_styles=1"]  # fmt: skip
    cfg = compose_train([*overrides, "data.decode=device"])
    assert cfg.data.decode == Decode.device
    assert (cfg.hardware.accelerator, cfg.hardware.strategy, cfg.hardware.precision) == ("gpu", strategy, "bf16-mixed")
    assert identity(cfg)["data.decode"] == "device"  # result-defining: its own run folder
    assert "data.decode" not in identity(compose_train(overrides))  # the presets keep pil
    (batch,), datamodule = loader_batches(OmegaConf.merge(cfg.data, {"batch_size": 2}), count=1)
    decoded = datamodule.decoded(batch, CPU)  # what on_after_batch_transfer does on a GPU rank, on the CPU
    assert {k: (v.shape, v.dtype, v.device) for k, v in decoded.items()} == {
        role: ((2, 3, CROP, CROP), torch.float32, CPU) for role in ("content", "style")
    }


def test_device_decode_on_a_prepared_folder_fails_in_one_line_before_training(
    folders: tuple[Path, Path], tmp_path: Path
) -> None:
    prepared = tmp_path / "prepared"
    prepare_folder(folders[1], prepared, LOAD, workers=1, progress=False)
    cfg = data_cfg(folders[0], prepared, decode="device")
    with pytest.raises(
        DataError,
        match=rf"^data.decode=device does not apply to data.style_dir={prepared}, [^\n]*expected data.decode=pil$",
    ):
        check_image_folders(cfg)  # in check_config, before the model is built


def test_a_tiny_snip_run_trains_on_device_decoded_batches(folders: tuple[Path, Path], tmp_path: Path) -> None:
    """Two rounds: SNIP's mask scores a stream batch read outside the fit; the fits' batches go through the hook;
    one loader worker reads the files."""
    overrides = [*TINY, "data=folders", f"data.content_dir={folders[0]}", f"data.style_dir={folders[1]}",
                 "data.decode=device", "data.num_workers=1", "pruning=snip", "pruning.rounds=1",
                 "training.steps=2"]  # fmt: skip
    run_dir = tmp_path / "run"
    LotteryRun(compose_train(overrides, output_dir=run_dir), run_dir).run()
    for index in (0, 1):
        metrics = json.loads((round_dir(run_dir, index) / "metrics.json").read_text())
        assert torch.isfinite(torch.tensor(metrics["E"]))


@pytest.mark.slow
def test_a_two_rank_cpu_ddp_run_decodes_on_every_rank(folders: tuple[Path, Path], tmp_path: Path) -> None:
    """hardware=ddp_cpu, the ddp preset's code path: each rank decodes its own batches in its own hook (a rank
    that did not would hand its model an uncut batch and fail)."""
    run_dir = tmp_path / "run"
    run_cli(["data=folders", f"data.content_dir={folders[0]}", f"data.style_dir={folders[1]}", "data.decode=device",
             "data.num_workers=0", "pruning.rounds=1", f"hydra.run.dir={run_dir}"], cwd=tmp_path)  # fmt: skip
    for index in (0, 1):
        hashes = metrics(run_dir, index)["mask_hashes"]
        assert len(hashes) == 2 and hashes[0] == hashes[1]  # one per rank
