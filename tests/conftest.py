"""Shared test helpers: tiny random-weight models and short config overrides."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from omegaconf import DictConfig, OmegaConf

from lottery_style.engine.compose import compose, register
from lottery_style.models import MODEL_REGISTRY, StyleTransferModule, create_model

DEFAULT_WORKERS = 2  # the CI machine's cores; `-n N` on the command line chooses another number


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config) -> None:
    """Run on ``DEFAULT_WORKERS`` xdist workers, one test file per worker, unless the command says otherwise.

    The choice lives here, not in pytest's ``addopts``, so that it is made where the tests are launched:
    ``-n N`` (``-n 0``: one process) and ``--dist`` win, and ``-p no:xdist`` (or a venv without
    pytest-xdist) runs in this process, where a hard-coded ``-n`` would be an unknown option. ``loadfile``
    keeps a module's tests on one worker, so its module-scoped runs are built once. Runs before xdist's own
    hook (this file registers after the plugin), which turns ``numprocesses`` into workers; a worker's own
    config (``workerinput``) is left as xdist made it.
    """
    if not config.pluginmanager.hasplugin("xdist") or hasattr(config, "workerinput"):
        return
    if config.option.numprocesses is None:
        config.option.numprocesses = DEFAULT_WORKERS
    if config.option.dist == "no" and not config.option.distload:
        config.option.dist = "loadfile"


# Tests that compose with Hydra's own compose API need the schemas and the run_id resolver as the app has them.
register()


def model_config(name: str, **overrides: Any) -> DictConfig:
    """The model's schema defaults with random VGG weights (no download) plus ``overrides``."""
    base = MODEL_REGISTRY[name].schema()
    return OmegaConf.merge(base, {"encoder": {"weights": "random"}}, overrides)


def tiny_model(name: str, seed: int = 0, **overrides: Any) -> StyleTransferModule:
    torch.manual_seed(seed)
    return create_model(model_config(name, **overrides))


def count(module: torch.nn.Module) -> int:
    """Parameters of a module, the unit of the parameter counts in docs/architectures.md."""
    return sum(p.numel() for p in module.parameters())


@pytest.fixture(scope="module")
def pair() -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed batch of two 32 px content images and two style images."""
    generator = torch.Generator().manual_seed(1)
    return torch.rand(2, 3, 32, 32, generator=generator), torch.rand(2, 3, 32, 32, generator=generator)


def overfit(model: StyleTransferModule, content: torch.Tensor, style: torch.Tensor, steps: int) -> list[float]:
    """Weighted losses of ``steps`` optimizer steps on one fixed batch, through the module's own optimizer."""
    optimizer = model.configure_optimizers()["optimizer"]
    history = []
    for _ in range(steps):
        optimizer.zero_grad()
        loss = model.weighted_loss(model.losses(content, style).terms)
        loss.backward()
        optimizer.step()
        history.append(loss.item())
    return history


@pytest.fixture(autouse=True, scope="session")
def _isolated_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """No test may reach the network or a user's caches: W&B offline, torch hub in a temp dir.

    Torch runs one intra-op thread per test process (and per subprocess a test
    starts): tensors of 32 px gain nothing from more, and pytest-xdist already
    keeps both cores busy with one worker each. Session scope puts this in force
    before any module-scoped run is built, so every run of a session computes
    with the same thread count (float sums, hence masks, depend on it).
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OMP_NUM_THREADS", "1")
        patch.setenv("WANDB_MODE", "offline")
        patch.setenv("WANDB_SILENT", "true")
        patch.setenv("TORCH_HOME", str(tmp_path_factory.getbasetemp() / "torch_home"))
        patch.setenv("LOTTERY_STYLE_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
        yield
    torch.set_num_threads(threads)


# Test size (conf/debug/tiny.yaml): tiny crops, 4 steps, random weights, CSV logging, no progress bars.
TINY = ["debug=tiny"]


def compose_train(overrides: list[str], output_dir: Path | None = None) -> DictConfig:
    """The root config as Hydra composes it for the command line, without running anything."""
    cfg = compose(overrides)
    if output_dir is not None:
        cfg.output_dir = str(output_dir)
    return cfg


class Crash(Exception):
    """Raised by :func:`crashing_run` to stand for a job killed mid-round."""


def crashing_run(round_index: int, step: int = 3) -> type:
    """A LotteryRun whose round ``round_index`` dies before optimizer step ``step``, to test resuming."""
    from lightning.pytorch import Callback

    from lottery_style.engine.lottery import LotteryRun

    class CrashAtStep(Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
            if trainer.global_step == step:
                raise Crash(f"killed at step {step} of round {round_index}")

    class CrashingRun(LotteryRun):
        def build_trainer(self, ticket_dir, mask_callback, index, logger, segment):
            trainer = super().build_trainer(ticket_dir, mask_callback, index, logger, segment)
            if index == round_index:
                trainer.callbacks.append(CrashAtStep())
            return trainer

    return CrashingRun
