"""What a ticket is on disk, the run summary and the matching verdict.

One folder per round::

    round_03/
      ticket.lst       the trained weights (encoder, transform, decoder) with the masks of the
                       pruned scope: survivors + packed mask bits, the rest raw (export format)
      metrics.json     sparsity (total, per part, per layer), E_content, E_style, E, SSIM, per-pair E
      config.yaml      the resolved run config
      grid.png         content | style | output for the fixed pairs
      DONE             written last: a round without it is unfinished and is resumed

plus ``rewind_point.lst`` (same format) at the run's top level and ``summary.csv``/``summary.json``.
Folders written before the compact format hold ``weights.pt`` + ``mask.pt`` and
``rewind_point.pt`` instead; :mod:`lottery_style.round_io` reads both.
The verdict is computed from the recorded metrics only, so it can be re-derived
(and unit-tested) without any model.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from lottery_style.atomic import atomic_write_json, atomic_write_text

DONE = "DONE"
TICKET_FILE = "ticket.lst"  # a round's weights and masks in one file (lottery_style.round_io)
REWIND_FILE = "rewind_point.lst"  # the run's rewind point, same format, no masks
LEGACY_WEIGHTS_FILE = "weights.pt"  # dense torch.save of the weights, before ticket.lst
LEGACY_MASKS_FILE = "mask.pt"  # bool masks, one byte per entry, before ticket.lst
LEGACY_REWIND_FILE = "rewind_point.pt"
SUMMARY_FIELDS = (
    "round", "method", "sparsity", "sparsity_model", "sparsity_encoder", "sparsity_transform",
    "sparsity_decoder", "E_content", "E_style", "E", "E_std", "ssim", "matching", "matching_std",
)  # fmt: skip


def round_dir(run_dir: str | Path, round_index: int) -> Path:
    return Path(run_dir) / f"round_{round_index:02d}"


def is_complete(ticket_dir: Path) -> bool:
    return (ticket_dir / DONE).is_file()


def finished_rounds(run_dir: str | Path) -> list[Path]:
    return sorted(p for p in Path(run_dir).glob("round_*") if is_complete(p))


def read_metrics(ticket_dir: Path) -> dict[str, Any]:
    return json.loads((ticket_dir / "metrics.json").read_text())


def mark_complete(ticket_dir: Path) -> None:
    atomic_write_text(ticket_dir / DONE, "")


@dataclass
class Verdict:
    """Which rounds match the dense round 0, under both criteria, and the extreme sparsities."""

    dense_E: float
    dense_E_std: float
    tolerance: float
    matching: list[bool] = field(default_factory=list)  # E <= E_dense * (1 + tolerance)
    matching_std: list[bool] = field(default_factory=list)  # E <= E_dense + std of dense per-pair E
    extreme_sparsity: float = 0.0
    extreme_sparsity_std: float = 0.0


def _extreme(sparsities: Sequence[float], matches: Sequence[bool]) -> float:
    return max((s for s, m in zip(sparsities, matches) if m), default=0.0)


def matching_verdict(rows: Sequence[dict[str, Any]], tolerance: float = 0.0) -> Verdict:
    """Matching = the ticket's test error is no greater than the dense model's (the paper's definition).

    ``rows`` are per-round metrics sorted by round with round 0 dense.
    """
    if not rows or rows[0]["round"] != 0:
        raise ValueError("a verdict needs the dense round 0 as the first row")
    dense_E, dense_std = float(rows[0]["E"]), float(rows[0].get("E_std", 0.0))
    verdict = Verdict(dense_E=dense_E, dense_E_std=dense_std, tolerance=tolerance)
    for row in rows:
        verdict.matching.append(float(row["E"]) <= dense_E * (1.0 + tolerance))
        verdict.matching_std.append(float(row["E"]) <= dense_E + dense_std)
    sparsities = [float(row["sparsity"]) for row in rows]
    verdict.extreme_sparsity = _extreme(sparsities, verdict.matching)
    verdict.extreme_sparsity_std = _extreme(sparsities, verdict.matching_std)
    return verdict


def summary_rows(run_dir: str | Path, tolerance: float) -> tuple[list[dict[str, Any]], Verdict]:
    """Per-round rows of a run folder (finished rounds only) with both verdicts filled in."""
    rows = []
    for ticket_dir in finished_rounds(run_dir):
        metrics = read_metrics(ticket_dir)
        row = {key: metrics.get(key) for key in SUMMARY_FIELDS}
        rows.append(row)
    verdict = matching_verdict(rows, tolerance)
    for row, match, match_std in zip(rows, verdict.matching, verdict.matching_std):
        row["matching"], row["matching_std"] = match, match_std
    return rows, verdict


def write_summary(run_dir: str | Path, tolerance: float) -> tuple[list[dict[str, Any]], Verdict]:
    """Write ``summary.csv`` and ``summary.json`` (rows + verdict) atomically."""
    run_dir = Path(run_dir)
    rows, verdict = summary_rows(run_dir, tolerance)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=SUMMARY_FIELDS)
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(run_dir / "summary.csv", buffer.getvalue())
    atomic_write_json(run_dir / "summary.json", {"rounds": rows, "verdict": asdict(verdict)})
    return rows, verdict


def _pct(value: float | None) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{100 * value:.1f}%"


def format_table(rows: Sequence[dict[str, Any]], verdict: Verdict) -> str:
    """The plain-text table printed at the end of a run."""
    lines = [f"{'round':>5}  {'sparsity':>8}  {'E':>12}  {'E_content':>12}  {'E_style':>12}  {'matching':>8}"]
    for row, match in zip(rows, verdict.matching):
        lines.append(
            f"{row['round']:>5}  {_pct(row['sparsity']):>8}  {row['E']:>12.5g}  "
            f"{row['E_content']:>12.5g}  {row['E_style']:>12.5g}  {'yes' if match else 'no':>8}"
        )
    lines.append(
        f"extreme sparsity: {_pct(verdict.extreme_sparsity)} (E <= dense x {1 + verdict.tolerance:g}); "
        f"{_pct(verdict.extreme_sparsity_std)} (E <= dense + 1 std of per-pair E)"
    )
    return "\n".join(lines)
