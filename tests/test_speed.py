"""Speed changes compute the same step: channels-last and compiled fits, fused optimizers, the two-pass
statistics, masks multiplied through a uint8 view; freed memory kept in the heap is reused without page faults."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest
import torch
from lightning.pytorch import Callback, Trainer
from torch.utils.data import DataLoader

from lottery_style.engine import speed
from lottery_style.engine.lottery import LotteryRun
from lottery_style.engine.rewinding import Segment
from lottery_style.engine.speed import SpeedOptions
from lottery_style.models.components.stats import mean_std
from lottery_style.pruning import dense_masks, magnitude_prune
from lottery_style.pruning.callback import MaskCallback
from lottery_style.pruning.masks import mask_factor
from tests.conftest import TINY, compose_train, tiny_model


class FirstLoss(Callback):
    def __init__(self) -> None:
        self.losses: list[float] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.losses.append(float(outputs["loss"]))


def fit(channels_last: bool, train_encoder: bool, steps: int = 2, compile: bool = False, extra: list | None = None):
    model = tiny_model("adain", train_encoder=train_encoder, optimizer={"weight_decay": 0.1})
    weights = {n: p.detach() for part in model.prunable_weights().values() for n, p in part.items()}
    masks = magnitude_prune(weights, dense_masks(weights), 0.5, tie_seed=0)
    torch.manual_seed(1)
    data = [{"content": torch.rand(3, 32, 32), "style": torch.rand(3, 32, 32)} for _ in range(steps)]
    record = FirstLoss()
    trainer = Trainer(
        max_steps=steps, logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        callbacks=[MaskCallback(masks), SpeedOptions(channels_last=channels_last, compile=compile), record, *(extra or [])],
    )  # fmt: skip
    trainer.fit(model, DataLoader(data, batch_size=1))
    return model, masks, record.losses, trainer.optimizers[0]


@pytest.mark.parametrize("train_encoder", [False, True])
def test_channels_last_trains_the_same_step_and_keeps_masks(train_encoder: bool) -> None:
    _, _, dense_losses, optimizer = fit(False, train_encoder)
    cl_model, masks, cl_losses, _ = fit(True, train_encoder)
    assert optimizer.defaults["fused"] is True
    assert cl_model.decoder.body[1].weight.is_contiguous(memory_format=torch.channels_last)
    assert cl_losses == pytest.approx(dense_losses, rel=1e-4)  # the step after an update included
    params = dict(cl_model.named_parameters())
    for name, mask in masks.items():
        assert torch.count_nonzero(params[name].detach()[~mask]) == 0, name  # weight decay cannot revive them


class LossesInUse(Callback):
    def on_train_start(self, trainer, pl_module) -> None:
        self.compiled = pl_module.__dict__.get("losses")  # the instance attribute shadowing the method, if any


def test_compiled_fit_trains_the_same_step_and_evaluates_eagerly() -> None:
    _, _, eager_losses, _ = fit(False, train_encoder=False)
    in_use = LossesInUse()
    model, _, compiled_losses, _ = fit(True, train_encoder=False, compile=True, extra=[in_use])
    assert hasattr(in_use.compiled, "_torchdynamo_orig_callable")  # training ran the torch.compile wrapper
    assert compiled_losses == pytest.approx(eager_losses, rel=1e-4)
    assert "losses" not in model.__dict__  # the compiled method is gone after the fit: evaluation runs eagerly


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_two_pass_statistics_equal_torch_var_mean(layout: torch.memory_format) -> None:
    torch.manual_seed(0)
    feat = (torch.randn(3, 8, 6, 10, dtype=torch.float64) * 4 + 1e3).contiguous(memory_format=layout)
    feat.requires_grad_()
    mean, std = mean_std(feat)
    ref_feat = feat.detach().clone().requires_grad_()
    ref_var, ref_mean = torch.var_mean(ref_feat, dim=(2, 3), keepdim=True)  # unbiased, as the references
    ref_std = (ref_var + 1e-5).sqrt()
    torch.testing.assert_close(mean, ref_mean)
    torch.testing.assert_close(std, ref_std)
    weights = torch.randn_like(std)
    (mean.sum() + (std * weights).sum()).backward()
    (ref_mean.sum() + (ref_std * weights).sum()).backward()
    torch.testing.assert_close(feat.grad, ref_feat.grad)


def test_mask_factor_multiplies_like_the_bool_mask_without_a_copy() -> None:
    torch.manual_seed(0)
    weight = torch.randn(16, 8, 3, 3).contiguous(memory_format=torch.channels_last)
    mask = torch.rand(16, 8, 3, 3) > 0.7
    factor = mask_factor(mask)
    assert factor.data_ptr() == mask.data_ptr()  # a view: masks cost no memory beyond the bool tensors
    assert torch.equal(weight.clone().mul_(factor), weight * mask)


# Page faults of allocating, filling and freeing a 64 MiB tensor (above glibc's largest dynamic mmap threshold)
# three times, before and after keep_freed_memory_in_heap, in a fresh process whose malloc nothing has tuned.
FAULTS_SCRIPT = """
import resource, torch
from lottery_style.engine.speed import keep_freed_memory_in_heap
def faults():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(3):
        tensor = torch.ones(16 * 2**20)
        del tensor
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
default = faults()
applied = keep_freed_memory_in_heap()
faults()  # the heap grows once
print(default, applied, faults())
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_freed_memory_kept_in_the_heap_is_reused_without_page_faults() -> None:
    result = subprocess.run([sys.executable, "-c", FAULTS_SCRIPT], capture_output=True, text=True, check=True)
    default, applied, kept = result.stdout.split()
    assert applied == "True"
    assert int(default) >= 3 * 16384 * 0.9  # glibc unmaps every 64 MiB tensor: each fill faults in all its 4 KiB pages
    assert int(kept) < int(default) / 100  # the heap's pages are reused as they are


@pytest.mark.parametrize("keep", [False, True])
def test_speed_options_keep_freed_memory_only_when_asked(keep: bool, monkeypatch) -> None:
    calls: list[bool] = []
    monkeypatch.setattr(speed, "keep_freed_memory_in_heap", lambda: calls.append(True) or True)
    SpeedOptions(keep_freed_memory=keep).setup(None, tiny_model("adain"), "fit")  # type: ignore[arg-type]
    assert calls == ([True] if keep else [])


@pytest.mark.parametrize("overrides", [[], ["training.channels_last=false", "training.keep_freed_memory=false"]])
def test_every_fit_of_a_run_gets_the_configured_speed_options(overrides: list[str], tmp_path) -> None:
    cfg = compose_train([*TINY, *overrides], tmp_path)
    trainer = LotteryRun(cfg, tmp_path).build_trainer(tmp_path / "round_00", MaskCallback({}), 0, False, Segment(0, 4, 0))
    (options,) = [callback for callback in trainer.callbacks if isinstance(callback, SpeedOptions)]
    assert (options.channels_last, options.compile, options.keep_freed_memory) == (
        cfg.training.channels_last, cfg.training.compile, cfg.training.keep_freed_memory
    )
    assert options.keep_freed_memory is not bool(overrides)  # on by default, off when overridden
