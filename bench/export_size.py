"""Ticket sizes for AdaIN at the paper's sparsities (export files and round folders), and the time of one
global pruning step.

Run: ``python bench/export_size.py`` (about a minute on 2 CPU cores). Weights are
random (default initialisation): the sizes depend on the weight statistics only
through the xz column. ``python bench/export_size.py --round RUN/round_03`` sizes
a trained round's ticket instead: as it is, and its decoder alone pruned further
by magnitude to 89.26%, where trained weights decide what xz gains.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import torch
from omegaconf import OmegaConf

from lottery_style.models import MODEL_REGISTRY, create_model
from lottery_style.pruning import dense_masks, magnitude_prune
from lottery_style.tickets.export import export_ticket
from lottery_style.tickets.paths import TICKET_FILE
from lottery_style.tickets.storage import load_round, save_rewind_point, save_round

SPARSITIES = (0.5, 0.8, 1 - 0.8**10)
TIMING_COPIES = 4  # 4 x AdaIN's 7.0M prunable weights = 28M, the size the timing is quoted at
MIB = 2**20


def adain_ticket_parts() -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """AdaIN's trainable state (encoder + decoder, not the frozen loss VGG) and its prunable weights."""
    cfg = OmegaConf.merge(MODEL_REGISTRY["adain"].schema(), {"encoder": {"weights": "random"}})
    torch.manual_seed(0)
    model = create_model(cfg)
    weights = {name: p.detach() for part in model.prunable_weights().values() for name, p in part.items()}
    state = {name: t for name, t in model.state_dict().items() if not name.startswith("loss_net.")}
    return state, weights


def pruned_tickets() -> Iterator[tuple[float, dict[str, torch.Tensor], dict[str, torch.Tensor]]]:
    """(sparsity, state with pruned entries zeroed, masks) at each of SPARSITIES, by IMP-style repeated pruning."""
    state, weights = adain_ticket_parts()
    masks = dense_masks(weights)
    for sparsity in SPARSITIES:
        masks = magnitude_prune(weights, masks, sparsity, tie_seed=0)
        ticket = {name: t.masked_fill(~masks[name], 0.0) if name in masks else t for name, t in state.items()}
        yield sparsity, ticket, masks


def size_table(folder: Path) -> None:
    _, weights = adain_ticket_parts()
    print(f"AdaIN: {sum(w.numel() for w in weights.values()):,} prunable weights")
    print(f"{'sparsity':>9} {'dense MiB':>10} {'floor MiB':>10} {'plain MiB (x floor)':>20} "
          f"{'xz MiB (x smaller)':>21} {'fp16 MiB':>9}")
    for sparsity, ticket, masks in pruned_tickets():
        size_row(f"{sparsity:>9.2%}", ticket, masks, folder)


def size_row(label: str, ticket: dict[str, torch.Tensor], masks: dict[str, torch.Tensor], folder: Path) -> None:
    """One line: the plain file against the floor, the xz file against dense fp32 (and against plain), fp16."""
    plain = export_ticket(ticket, masks, folder / "plain.safetensors")
    packed = export_ticket(ticket, masks, folder / "packed.safetensors.xz", compress=True)
    half = export_ticket(ticket, masks, folder / "half.safetensors", values="fp16")
    print(f"{label} {plain.dense_bytes / MIB:>10.2f} {plain.floor_bytes / MIB:>10.2f} "
          f"{plain.file_bytes / MIB:>11.2f} ({plain.ratio_to_floor:.4f}) "
          f"{packed.file_bytes / MIB:>11.2f} ({packed.x_smaller_than_dense:>5.2f}x, "
          f"{1 - packed.file_bytes / plain.file_bytes:.1%} below plain) {half.file_bytes / MIB:>9.2f}")


def trained_round(ticket_dir: Path, folder: Path) -> None:
    """A trained round's ticket as it is, then its decoder alone pruned further to the paper's sparsity."""
    weights, masks = load_round(ticket_dir)
    print(f"{ticket_dir}: {sum(int(m.count_nonzero()) for m in masks.values()):,} of "
          f"{sum(m.numel() for m in masks.values()):,} prunable weights kept")
    print(f"{'ticket':>9} {'dense MiB':>10} {'floor MiB':>10} {'plain MiB (x floor)':>20} "
          f"{'xz MiB (x smaller)':>21} {'fp16 MiB':>9}")
    size_row(f"{'as is':>9}", weights, masks, folder)
    decoder = {name: t for name, t in weights.items() if name.startswith("decoder.")}
    decoder_masks = {name: m for name, m in masks.items() if name in decoder}
    decoder_masks = magnitude_prune({n: decoder[n] for n in decoder_masks}, decoder_masks, SPARSITIES[-1], tie_seed=0)
    pruned = {name: t.masked_fill(~decoder_masks[name], 0.0) if name in decoder_masks else t for name, t in decoder.items()}
    size_row(f"{'dec 89%':>9}", pruned, decoder_masks, folder)


def round_table(folder: Path) -> None:
    """A round's ticket file (what ``record`` writes) against the floor, and the old weights.pt + mask.pt."""
    print("\nround folder files (weights + masks), AdaIN trainable state")
    print(f"{'sparsity':>9} {'floor MiB':>10} {TICKET_FILE + ' MiB (x floor)':>26} "
          f"{'old weights.pt + mask.pt MiB':>29}")
    for sparsity, ticket, masks in pruned_tickets():
        save_round(folder, ticket, masks)
        kept = sum(int(m.count_nonzero()) for m in masks.values())
        prunable = sum(m.numel() for m in masks.values())
        unpruned_bits = sum(8 * t.numel() * t.element_size() for name, t in ticket.items() if name not in masks)
        floor = (32 * kept + prunable + unpruned_bits) / 8
        size = (folder / TICKET_FILE).stat().st_size
        torch.save(ticket, folder / "weights.pt")
        torch.save(masks, folder / "mask.pt")
        old = (folder / "weights.pt").stat().st_size + (folder / "mask.pt").stat().st_size
        print(f"{sparsity:>9.2%} {floor / MIB:>10.2f} {size / MIB:>17.2f} ({size / floor:.4f}) {old / MIB:>29.2f}")
    state, _ = adain_ticket_parts()
    rewind = save_rewind_point(folder, state)
    torch.save(state, folder / "rewind_point.pt")
    print(f"rewind point (dense): {rewind.file_bytes / MIB:.2f} MiB, raw fp32 {rewind.dense_bytes / MIB:.2f} MiB "
          f"(+{rewind.file_bytes - rewind.dense_bytes} bytes), old rewind_point.pt "
          f"{(folder / 'rewind_point.pt').stat().st_size / MIB:.2f} MiB")


def pruning_time() -> None:
    _, weights = adain_ticket_parts()
    big = {f"copy{i}.{name}": torch.randn_like(w) for i in range(TIMING_COPIES) for name, w in weights.items()}
    masks = dense_masks(big)
    print(f"\nglobal magnitude pruning of {sum(w.numel() for w in big.values()):,} weights")
    for target in (0.2, 0.36, 1 - 0.8**9, 1 - 0.8**10):
        start = time.perf_counter()
        masks = magnitude_prune(big, masks, target, tie_seed=0)
        print(f"  to {target:.2%}: {time.perf_counter() - start:.2f} s")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--round", type=Path, help="a finished round folder of a trained run: size its ticket only")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.round is not None:
            trained_round(args.round, Path(tmp))
        else:
            size_table(Path(tmp))
            round_table(Path(tmp))
    if args.round is None:
        pruning_time()
