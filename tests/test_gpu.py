"""The GPU paths (issue 26): bf16 training with masks and fused Adam, a ``hardware=gpu`` run, nvjpeg decoding,
``stylize --device cuda`` and single-GPU DDP.

Marked ``gpu`` and skipped where torch sees no CUDA device, so the CPU suite collects and skips them;
``bash bench/gpu_check.sh`` runs them on a GPU machine, beside bench/gpu.py. ``-rA`` prints what each measured.

``LOTTERY_STYLE_TEST_DEVICE=cpu`` runs the same tests on the CPU (bf16 autocast on the CPU, the GPU presets
with ``hardware.accelerator=cpu``): it checks the tests' own code where no GPU is, not the GPU.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from lightning.pytorch import Trainer
from torch.utils.data import DataLoader

from lottery_style.cli import main as cli_main
from lottery_style.pruning import dense_masks, magnitude_prune
from lottery_style.pruning.callback import MaskCallback
from lottery_style.tickets.paths import DONE, round_dir
from lottery_style.tickets.storage import load_round
from lottery_style.train import train
from tests.conftest import TINY, compose_train, tiny_model
from tests.test_ddp import metrics, run_cli
from tests.test_device_decode import (
    CPU,
    MAX_ABS_TOLERANCE,
    MEAN_ABS_TOLERANCE,
    folders,  # noqa: F401 (a fixture)
    loader_batches,
)
from tests.test_fast_data import data_cfg
from tests.test_stylize import images, read_png, run_dir, visible_ticket  # noqa: F401 (fixtures)

DEVICE = torch.device(os.environ.get("LOTTERY_STYLE_TEST_DEVICE", "cuda"))
pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(
        DEVICE.type == "cuda" and not torch.cuda.is_available(),
        reason="needs a CUDA device (torch.cuda.is_available() is False)",
    ),
]
# The GPU presets as they are on a GPU; on the CPU check of the tests themselves, pointed at the CPU.
ON_DEVICE = [] if DEVICE.type == "cuda" else ["hardware.accelerator=cpu"]

# bf16 autocast against fp32, per loss term (batch mean) and for the weighted loss, relative. Measured with CPU
# autocast on these tiny random-weight models (64 px, batch 2, 3 seeds): at most 0.8% on the weighted loss and
# 0.9% per term and sample; bf16 keeps 8 mantissa bits (0.4% per rounding).
BF16_RTOL = 0.03
# stylize on CUDA against the CPU, 8-bit PNG levels: cuDNN computes fp32 convolutions in TF32 by default (10
# mantissa bits), so the outputs differ by rounding, not by a level on average.
STYLIZE_MAX_LEVELS = 3
STYLIZE_MEAN_LEVELS = 0.5


def random_batches(count: int, size: int, seed: int) -> list[dict[str, torch.Tensor]]:
    generator = torch.Generator().manual_seed(seed)
    return [
        {role: torch.rand(2, 3, size, size, generator=generator) for role in ("content", "style")}
        for _ in range(count)
    ]


@pytest.mark.parametrize("name", ["adain", "sanet"])
def test_a_bf16_step_agrees_with_fp32_and_fused_adam_keeps_pruned_weights_zero(name: str, tmp_path: Path) -> None:
    """AdaIN+ and SANet+ (encoder trained): the loss terms under bf16 autocast on the device against fp32 on the
    CPU for the same weights and batch; then three bf16-mixed steps of the module's own (fused) Adam with half
    of every prunable weight masked: pruned weights and their Adam moments stay exactly zero, survivors move."""
    model = tiny_model(name, train_encoder=True)
    (batch,) = random_batches(1, 64, seed=1)
    with torch.no_grad():
        fp32 = model.losses(batch["content"], batch["style"]).terms
        fp32_total = model.weighted_loss(fp32)
        model.to(DEVICE)
        with torch.autocast(DEVICE.type, dtype=torch.bfloat16):
            bf16 = model.losses(batch["content"].to(DEVICE), batch["style"].to(DEVICE))
        bf16_total = model.weighted_loss(bf16.terms).float().cpu()
    assert bf16.stylized.dtype == torch.bfloat16, "autocast did not run the decoder in bf16"
    errors = {t: float((bf16.terms[t].float().mean().cpu() - v.mean()).abs() / v.mean()) for t, v in fp32.items()}
    errors["weighted"] = float((bf16_total - fp32_total).abs() / fp32_total)
    print(f"{name}+ bf16 vs fp32 relative loss differences: {errors}")
    assert max(errors.values()) <= BF16_RTOL, errors

    model.cpu()
    weights = {n: p.detach() for part in model.prunable_weights().values() for n, p in part.items()}
    masks = magnitude_prune(weights, dense_masks(weights), 0.5, tie_seed=0)
    start = {n: w.clone() for n, w in weights.items()}
    trainer = Trainer(accelerator=DEVICE.type, devices=1, precision="bf16-mixed", max_steps=3,
                      callbacks=[MaskCallback(masks)], logger=False, enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path)  # fmt: skip
    trainer.fit(model, train_dataloaders=DataLoader(random_batches(3, 64, seed=2), batch_size=None))
    (optimizer,) = trainer.optimizers
    assert optimizer.defaults["fused"] is True
    params = dict(model.named_parameters())
    for key, mask in masks.items():
        param = params[key].detach().cpu()
        assert param.dtype == torch.float32, key  # mixed precision keeps fp32 weights
        assert torch.count_nonzero(param[~mask]) == 0, key
        state = optimizer.state[params[key]]
        for moment in ("exp_avg", "exp_avg_sq"):
            assert torch.count_nonzero(state[moment].cpu()[~mask]) == 0, (key, moment)
    assert all(not torch.equal(params[k].detach().cpu()[masks[k]], start[k][masks[k]]) for k in masks if "decoder" in k)


def test_a_two_round_gpu_run_end_to_end_gives_the_same_masks_when_rerun(tmp_path: Path) -> None:
    """``hardware=gpu`` (bf16-mixed, TF32 matmuls) through the app's own entry, twice: the same masks in every
    round, pruned weights zero in the saved tickets, finite errors."""
    overrides = [*TINY, "hardware=gpu", *ON_DEVICE, "pruning.rounds=2"]
    runs = [tmp_path / "first", tmp_path / "again"]
    for run in runs:
        train(compose_train(overrides, output_dir=run))
    for index in range(3):
        (weights, masks), (_, again) = (load_round(round_dir(run, index)) for run in runs)
        assert masks.keys() == again.keys()
        differing = {k: int((masks[k] != again[k]).sum()) for k in masks if not torch.equal(masks[k], again[k])}
        assert not differing, f"round {index}: mask entries that differ on rerun: {differing}"
        assert all(torch.count_nonzero(weights[k][~m]) == 0 for k, m in masks.items()), index
        assert np.isfinite(json.loads((round_dir(runs[0], index) / "metrics.json").read_text())["E"])


def test_device_decode_on_the_device_matches_pil(folders: tuple[Path, Path]) -> None:  # noqa: F811 (fixture)
    """``data.decode=device`` decoded on the device (nvjpeg on CUDA) against ``pil`` on the CPU, on the CPU test's
    folders (a PNG, a file that is no image, a truncated JPEG) and within the CPU test's pixel bounds."""
    (pil_batches, pil_dm), (uncut_batches, device_dm) = (
        loader_batches(data_cfg(*folders, batch_size=4, decode=decode), count=6) for decode in ("pil", "device")
    )
    differences = []
    for uncut, batch in zip(uncut_batches, pil_batches, strict=True):
        decoded, reference = device_dm.decoded(uncut, DEVICE), pil_dm.decoded(batch, CPU)
        for role in ("content", "style"):
            assert decoded[role].device.type == DEVICE.type and decoded[role].shape == reference[role].shape
            differences.append((decoded[role].cpu() - reference[role]).abs().flatten())
    difference = torch.cat(differences) * 255
    measured = (f"|device - pil| {difference.mean():.3f} level on average, {difference.max():.0f} at most, "
                f"{(difference == 0).float().mean():.1%} equal")  # fmt: skip
    print(measured)
    assert difference.mean() <= MEAN_ABS_TOLERANCE * 255 and difference.max() <= MAX_ABS_TOLERANCE * 255, measured


def test_stylize_on_cuda_matches_the_cpu(
    visible_ticket: Path, images: dict[str, Path], tmp_path: Path  # noqa: F811 (fixtures)
) -> None:
    """``lottery-style stylize --device cuda`` against ``--device cpu``: the same files, pixels within rounding."""
    outputs = {}
    for device in ("cpu", DEVICE.type):
        out = tmp_path / device
        assert cli_main(["stylize", "--ticket", str(visible_ticket), "--content", str(images["square"]),
                         "--style", str(images["style"].parent), "--out", str(out), "--keep-size",
                         "--device", device]) == 0  # fmt: skip
        outputs[device] = {p.name: read_png(p).astype(np.int16) for p in sorted(out.glob("*.png"))}
    assert outputs["cpu"].keys() == outputs[DEVICE.type].keys() == {"square__style.png", "square__other.png"}
    difference = np.abs(np.stack([outputs[DEVICE.type][k] - outputs["cpu"][k] for k in outputs["cpu"]]))
    measured = f"|{DEVICE.type} - cpu| {difference.mean():.3f} level on average, {difference.max()} at most"
    print(measured)
    assert difference.max() <= STYLIZE_MAX_LEVELS and difference.mean() <= STYLIZE_MEAN_LEVELS, measured


def test_a_single_gpu_ddp_run_finishes_with_one_rank(tmp_path: Path) -> None:
    """``hardware=ddp`` on one device (NCCL on CUDA) through the command line: two rounds, one mask hash each."""
    run = tmp_path / "run"
    overrides = [*ON_DEVICE, "hardware.devices=1", "pruning.rounds=1", f"hydra.run.dir={run}"]
    run_cli(overrides, cwd=tmp_path, hardware="ddp")
    for index in range(2):
        assert len(metrics(run, index)["mask_hashes"]) == 1
        assert (round_dir(run, index) / DONE).is_file()
