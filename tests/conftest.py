"""Shared test helpers: tiny random-weight models and short config overrides."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from omegaconf import DictConfig, OmegaConf

from lottery_style.models import MODEL_REGISTRY, StyleTransferModule, create_model


def model_config(name: str, **overrides: Any) -> DictConfig:
    """The model's schema defaults with random VGG weights (no download) plus ``overrides``."""
    base = OmegaConf.structured(MODEL_REGISTRY[name].config)
    return OmegaConf.merge(base, {"encoder": {"weights": "random"}}, overrides)


def tiny_model(name: str, seed: int = 0, **overrides: Any) -> StyleTransferModule:
    torch.manual_seed(seed)
    return create_model(model_config(name, **overrides))


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


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """No test may reach the network or a user's caches: W&B offline, torch hub in a temp dir."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path_factory.getbasetemp() / "torch_home"))
    monkeypatch.setenv("LOTTERY_STYLE_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
