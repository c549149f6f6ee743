"""A round folder on disk: its ticket and the run's rewind point (safetensors ticket files), its metrics,
and whether it is finished.

A round stores its trained weights and its masks as ONE safetensors file written by
:func:`lottery_style.tickets.export.export_ticket`: each masked tensor is its surviving
values plus its mask packed 8 entries per byte, every other tensor raw. The
packed bits *are* the mask, so a second mask file would only store them again;
one file is also one atomic write, so a round can never hold weights and masks
of different saves. Loading is bit-exact (kept values and unmasked tensors bit
for bit, pruned entries +0.0) and never unpickles anything.

The rewind point (dense in round 0) goes through the same writer without masks:
raw tensors plus a header, no bigger than a ``torch.save`` of it.

Run folders written before are still read: ``ticket.lst`` and ``rewind_point.lst``
(the layout before safetensors), and before those ``weights.pt`` + ``mask.pt`` and
``rewind_point.pt`` (with ``weights_only=True``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from lottery_style.core.atomic import atomic_write_text, load_tensors
from lottery_style.pruning.masks import Masks
from lottery_style.tickets.export import ExportStats, export_metadata, export_ticket, load_ticket_export
from lottery_style.tickets.paths import (
    DONE,
    LEGACY_MASKS_FILE,
    LEGACY_REWIND_FILE,
    LEGACY_WEIGHTS_FILE,
    LST_REWIND_FILE,
    LST_TICKET_FILE,
    METRICS_FILE,
    REWIND_FILE,
    ROUND_GLOB,
    TICKET_FILE,
    evaluation_dir,
)

# The masks' own order (global pruning breaks ties by position in it): a ticket.lst recorded it in its metadata,
# a safetensors ticket file keeps it itself.
_LST_MASK_ORDER = "mask_order"


def is_complete(ticket_dir: Path) -> bool:
    return (ticket_dir / DONE).is_file()


def finished_rounds(run_dir: str | Path) -> list[Path]:
    return sorted(p for p in Path(run_dir).glob(ROUND_GLOB) if is_complete(p))


def read_metrics(ticket_dir: Path) -> dict[str, Any]:
    return json.loads((ticket_dir / METRICS_FILE).read_text())


def round_metrics(ticket_dir: Path, evaluation: str | None = None) -> dict[str, Any]:
    """A round's training-time metrics, or those of its evaluation named ``evaluation`` (``lottery-style evaluate``)."""
    return read_metrics(ticket_dir if evaluation is None else evaluation_dir(ticket_dir, evaluation))


def evaluated_rounds(run_dir: str | Path, evaluation: str | None = None) -> list[Path]:
    """The finished rounds of a run, or those of them that hold the evaluation named ``evaluation``."""
    rounds = finished_rounds(run_dir)
    if evaluation is None:
        return rounds
    return [ticket_dir for ticket_dir in rounds if (evaluation_dir(ticket_dir, evaluation) / METRICS_FILE).is_file()]


def mark_complete(ticket_dir: Path) -> None:
    atomic_write_text(ticket_dir / DONE, "")


def _load_legacy_masks(path: Path) -> Masks:
    data = load_tensors(path)
    if not isinstance(data, dict) or not all(isinstance(m, Tensor) and m.dtype == torch.bool for m in data.values()):
        raise ValueError(f"{path} is not a mask file: expected a dict of bool tensors")
    return dict(data)


def save_round(ticket_dir: str | Path, weights: Mapping[str, Tensor], masks: Masks) -> ExportStats:
    """Write a round's weights with its masks atomically; the weights' pruned entries must be zero."""
    return export_ticket(weights, masks, Path(ticket_dir) / TICKET_FILE)


def _ordered_masks(masks: Masks, order: object, path: Path) -> Masks:
    if not isinstance(order, list) or sorted(order) != sorted(masks):
        raise ValueError(f"{path}: the recorded mask order {order!r} does not name the stored masks {sorted(masks)}")
    return {name: masks[name] for name in order}


def _ticket_file(ticket_dir: Path) -> Path | None:
    """The round's ticket file, ``ticket.safetensors`` or an older folder's ``ticket.lst``; None when it has neither."""
    return next((ticket_dir / name for name in (TICKET_FILE, LST_TICKET_FILE) if (ticket_dir / name).is_file()), None)


def read_round(ticket_dir: str | Path) -> tuple[dict[str, Tensor], Masks | None]:
    """A round's weights and masks; the masks are None for an old folder that has only ``weights.pt``."""
    ticket_dir = Path(ticket_dir)
    path = _ticket_file(ticket_dir)
    if path is not None:
        weights, masks = load_ticket_export(path)
        order = export_metadata(path).get(_LST_MASK_ORDER) if path.name == LST_TICKET_FILE else None
        return weights, masks if order is None else _ordered_masks(masks, order, path)
    legacy_masks = ticket_dir / LEGACY_MASKS_FILE
    weights = load_tensors(ticket_dir / LEGACY_WEIGHTS_FILE)
    return weights, _load_legacy_masks(legacy_masks) if legacy_masks.is_file() else None


def load_round(ticket_dir: str | Path) -> tuple[dict[str, Tensor], Masks]:
    """A finished round's weights and masks, which the next round starts from (either format)."""
    weights, masks = read_round(ticket_dir)
    if masks is None:
        raise ValueError(f"{ticket_dir} has weights but no masks (no {TICKET_FILE}, no {LEGACY_MASKS_FILE})")
    return weights, masks


def has_round_weights(ticket_dir: str | Path) -> bool:
    """Whether the folder holds a round's weights in any format."""
    return _ticket_file(Path(ticket_dir)) is not None or (Path(ticket_dir) / LEGACY_WEIGHTS_FILE).is_file()


def load_round_masks(ticket_dir: str | Path) -> Masks:
    """The masks of a finished round (of this run or of a controls' ``pruning.source_run``), in any format."""
    ticket_dir = Path(ticket_dir)
    if _ticket_file(ticket_dir) is not None:
        return load_round(ticket_dir)[1]
    return _load_legacy_masks(ticket_dir / LEGACY_MASKS_FILE)  # without reading the old dense weights.pt


def save_rewind_point(run_dir: str | Path, state: Mapping[str, Tensor]) -> ExportStats:
    """Write the run's rewind point (dense, so stored raw) atomically."""
    return export_ticket(state, {}, Path(run_dir) / REWIND_FILE)


def rewind_point_file(run_dir: str | Path) -> Path | None:
    """The run's rewind point file, new format or old, or None when the run has none yet."""
    for name in (REWIND_FILE, LST_REWIND_FILE, LEGACY_REWIND_FILE):
        if (Path(run_dir) / name).is_file():
            return Path(run_dir) / name
    return None


def load_rewind_point(run_dir: str | Path) -> dict[str, Tensor]:
    """The run's rewind point, from ``rewind_point.safetensors`` or an older run's ``.lst`` or ``.pt`` file."""
    path = rewind_point_file(run_dir)
    if path is None:
        names = f"{REWIND_FILE}, {LST_REWIND_FILE} or {LEGACY_REWIND_FILE}"
        raise FileNotFoundError(f"{run_dir} has no rewind point: no {names}")
    return load_tensors(path) if path.name == LEGACY_REWIND_FILE else load_ticket_export(path)[0]
