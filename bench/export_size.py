"""Ticket export sizes for AdaIN at the paper's sparsities, and the time of one global pruning step.

Run: ``python bench/export_size.py`` (about a minute on 2 CPU cores). Weights are
random (default initialisation): the sizes depend on the weight statistics only
through the compressed column.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import torch
from omegaconf import OmegaConf

from lottery_style.export import export_ticket
from lottery_style.models import create_model
from lottery_style.models.adain import AdaINConfig
from lottery_style.pruning import dense_masks, magnitude_prune

SPARSITIES = (0.5, 0.8, 1 - 0.8**10)
TIMING_COPIES = 4  # 4 x AdaIN's 7.0M prunable weights = 28M, the size the timing is quoted at
MIB = 2**20


def adain_ticket_parts() -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """AdaIN's trainable state (encoder + decoder, not the frozen loss VGG) and its prunable weights."""
    cfg = OmegaConf.structured(AdaINConfig)
    cfg.encoder.weights = "random"
    torch.manual_seed(0)
    model = create_model(cfg)
    weights = {name: p.detach() for part in model.prunable_weights().values() for name, p in part.items()}
    state = {name: t for name, t in model.state_dict().items() if not name.startswith("loss_net.")}
    return state, weights


def size_table(folder: Path) -> None:
    state, weights = adain_ticket_parts()
    masks = dense_masks(weights)
    print(f"AdaIN: {sum(w.numel() for w in weights.values()):,} prunable weights")
    print(f"{'sparsity':>9} {'dense MiB':>10} {'floor MiB':>10} {'plain MiB (x floor)':>20} "
          f"{'lzma MiB (x smaller)':>21} {'fp16 MiB':>9}")
    for sparsity in SPARSITIES:
        masks = magnitude_prune(weights, masks, sparsity)
        ticket = {name: t.masked_fill(~masks[name], 0.0) if name in masks else t for name, t in state.items()}
        plain = export_ticket(ticket, masks, folder / "plain.lst")
        packed = export_ticket(ticket, masks, folder / "packed.lst", compress=True)
        half = export_ticket(ticket, masks, folder / "half.lst", values="fp16")
        print(f"{sparsity:>9.2%} {plain.dense_bytes / MIB:>10.2f} {plain.floor_bytes / MIB:>10.2f} "
              f"{plain.file_bytes / MIB:>11.2f} ({plain.ratio_to_floor:.4f}) "
              f"{packed.file_bytes / MIB:>11.2f} ({packed.x_smaller_than_dense:>5.2f}x) "
              f"{half.file_bytes / MIB:>9.2f}")


def pruning_time() -> None:
    _, weights = adain_ticket_parts()
    big = {f"copy{i}.{name}": torch.randn_like(w) for i in range(TIMING_COPIES) for name, w in weights.items()}
    masks = dense_masks(big)
    print(f"\nglobal magnitude pruning of {sum(w.numel() for w in big.values()):,} weights")
    for target in (0.2, 0.36, 1 - 0.8**9, 1 - 0.8**10):
        start = time.perf_counter()
        masks = magnitude_prune(big, masks, target)
        print(f"  to {target:.2%}: {time.perf_counter() - start:.2f} s")


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        size_table(Path(tmp))
    pruning_time()
