"""The paper's test error on the fixed held-out pairs, and the stylized grid of a round.

Evaluation runs outside the Trainer on purpose: every DDP rank computes the
same numbers on the same fixed pairs, so the decisions that follow (the next
round's mask, the verdict) cannot differ between ranks.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import torch
from lightning.pytorch import seed_everything
from omegaconf import DictConfig
from torch import Tensor
from torchvision.utils import make_grid, save_image

from lottery_style.core.atomic import atomic_write
from lottery_style.core.metrics import METRICS
from lottery_style.models import create_model
from lottery_style.models.base import StyleTransferModule


def evaluation_device(accelerator: str) -> torch.device:
    if accelerator in ("gpu", "cuda", "auto") and torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


@torch.no_grad()
def per_pair_errors(model: StyleTransferModule, batches: Iterable[dict[str, Tensor]], device: torch.device) -> dict[str, Tensor]:
    """Every test error of the model (:meth:`StyleTransferModule.test_errors`) on every pair, in batch order."""
    was_training = model.training
    model.eval().to(device)
    per_pair: dict[str, list[Tensor]] = {}
    for batch in batches:
        errors = model.test_errors(batch["content"].to(device), batch["style"].to(device))
        for key, value in errors.items():
            per_pair.setdefault(key, []).append(value.float().cpu())
    model.train(was_training)
    values = {key: torch.cat(chunks) for key, chunks in per_pair.items()}
    if not values:
        raise ValueError("the evaluation set is empty: expected at least one content/style pair")
    undeclared = sorted(set(values) - set(METRICS))
    if undeclared:  # every output takes its columns from METRICS: an undeclared value would be dropped unseen
        raise ValueError(f"the model's test_errors returned {undeclared}, which no core.metrics.register_metric declares")
    return values


def summarise(values: dict[str, Tensor]) -> dict:
    """The mean over the pairs of every metric (``core.metrics``), the std of per-pair E and the per-pair E."""
    result = {key: float(value.mean()) for key, value in values.items()}
    result["E_std"] = float(values["E"].std(unbiased=False))
    result["per_pair_E"] = [float(v) for v in values["E"]]
    return result


def evaluate(model: StyleTransferModule, batches: Iterable[dict[str, Tensor]], device: torch.device) -> dict:
    """The mean over all pairs of every metric the model returns, the std of per-pair E and the per-pair E."""
    return summarise(per_pair_errors(model, batches, device))


def seeded_model(cfg: DictConfig) -> StyleTransferModule:
    """A run's model as its training builds it, before any ticket's weights are loaded: seeded by the
    replicate seed, so that what a ticket does not hold (a random frozen loss VGG) is the run's own."""
    seed_everything(cfg.seed, workers=True)
    return create_model(cfg.model)


@torch.no_grad()
def save_grid(model: StyleTransferModule, batch: dict[str, Tensor], path: Path, device: torch.device) -> Path:
    """One row per pair: content | style | output."""
    was_training = model.training
    model.eval().to(device)
    content, style = batch["content"].to(device), batch["style"].to(device)
    output = model.stylize(content, style).clamp(0, 1)
    model.train(was_training)
    rows = torch.stack([content, style, output], dim=1).flatten(0, 1).cpu()
    grid = make_grid(rows, nrow=3, padding=2)
    return atomic_write(path, lambda handle: save_image(grid, handle, format="png"))
