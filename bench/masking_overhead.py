"""What enforcing masks costs: step time masked/dense, parameter memory, one global pruning step.

Usage: python bench/masking_overhead.py [--repeats 5] [--steps 6] [--size 128] [--batch 2]

Masked and dense fits alternate in one process (which one goes first alternates too)
so that load from other processes hits both alike; the ratio of the medians is printed.
The step time is measured from batch start to batch end inside the Trainer, so it
includes the gradient masking before the optimizer step and the weight masking after it.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from lightning.pytorch import Callback, Trainer
from omegaconf import OmegaConf
from torch.utils.data import DataLoader

from lottery_style.models import MODEL_REGISTRY, create_model
from lottery_style.pruning import dense_masks, magnitude_prune
from lottery_style.pruning.callback import MaskCallback


class StepTimer(Callback):
    def __init__(self) -> None:
        self.times: list[float] = []
        self._start = 0.0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.times.append(time.perf_counter() - self._start)


def model(name: str):
    torch.manual_seed(0)
    cfg = OmegaConf.merge(MODEL_REGISTRY[name].schema(), {"encoder": {"weights": "random"}})
    return create_model(cfg)


def fit_step_times(masked: bool, steps: int, size: int, batch: int) -> list[float]:
    module = model("adain")
    weights = {n: p.detach() for g in module.prunable_weights().values() for n, p in g.items()}
    masks = magnitude_prune(weights, dense_masks(weights), 0.892, tie_seed=0) if masked else {}
    data = [{"content": torch.rand(3, size, size), "style": torch.rand(3, size, size)} for _ in range(batch * steps)]
    timer = StepTimer()
    trainer = Trainer(
        max_steps=steps, accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, callbacks=[MaskCallback(masks), timer],
    )  # fmt: skip
    trainer.fit(module, DataLoader(data, batch_size=batch))
    return timer.times[1:]  # the first step warms up allocators


def memory_ratio() -> float:
    module = model("adain")
    weights = {n: p for g in module.prunable_weights().values() for n, p in g.items()}
    params = sum(p.numel() * p.element_size() for p in weights.values())
    masks = dense_masks({n: p.detach() for n, p in weights.items()})
    mask_bytes = sum(m.numel() * m.element_size() for m in masks.values())
    return (params + mask_bytes) / params


def global_pruning_seconds(repeats: int, tied: bool = False) -> tuple[int, float]:
    """Median seconds of one global step to 20%; ``tied``: half of every layer exactly 0, a tie the step must order."""
    module = model("adaattn")
    weights = {n: p.detach().clone() for g in module.prunable_weights().values() for n, p in g.items()}
    if tied:
        generator = torch.Generator().manual_seed(0)
        for w in weights.values():
            w.view(-1)[torch.randperm(w.numel(), generator=generator)[: w.numel() // 2]] = 0.0
    total = sum(w.numel() for w in weights.values())
    masks = dense_masks(weights)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        magnitude_prune(weights, masks, 0.2, tie_seed=0)
        times.append(time.perf_counter() - start)
    return total, statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch", type=int, default=2)
    args = parser.parse_args()
    masked, dense = [], []
    for repeat in range(args.repeats):
        # Alternate which variant goes first, so that warm-up or drift in a pair favours neither.
        for is_masked in (True, False) if repeat % 2 == 0 else (False, True):
            (masked if is_masked else dense).extend(fit_step_times(is_masked, args.steps, args.size, args.batch))
    m, d = statistics.median(masked), statistics.median(dense)
    print(f"AdaIN+ step, batch {args.batch} at {args.size} px, {len(masked)} steps each, interleaved")
    print(f"  median step masked (89.2% sparse) {m * 1000:.1f} ms, dense {d * 1000:.1f} ms, ratio {m / d:.3f}")
    print(f"  parameter memory with bool masks / without: {memory_ratio():.3f}x")
    total, seconds = global_pruning_seconds(args.repeats)
    print(f"  one global magnitude pruning step on {total / 1e6:.1f}M weights (AdaAttN): {seconds:.2f} s (median)")
    _, tied = global_pruning_seconds(args.repeats, tied=True)
    print(f"  the same with half of every layer tied at 0 (a random tie order drawn): {tied:.2f} s, {tied / seconds:.2f}x")


if __name__ == "__main__":
    main()
