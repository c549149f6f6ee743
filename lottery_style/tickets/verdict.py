"""The run summary (sparsity vs metrics per round) and the paper's matching verdict.

The verdict is computed from the recorded metrics only, so it can be re-derived
(and unit-tested) without any model.
"""

from __future__ import annotations

import csv
import io
import math
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from scipy.stats import t

from lottery_style.core.atomic import atomic_write_json, atomic_write_text
from lottery_style.core.config import PARTS
from lottery_style.core.metrics import METRICS, Metric
from lottery_style.data.images import SKIPPED_IMAGES, merged_record
from lottery_style.tickets.paths import SUMMARY_CSV, SUMMARY_JSON
from lottery_style.tickets.storage import evaluated_rounds, finished_rounds, read_metrics, round_metrics

ROUND_FIELDS = ("round", "method", "sparsity", "sparsity_model", *(f"sparsity_{part}" for part in PARTS))
VERDICT_FIELDS = ("matching", "dE_mean", "dE_ci_low", "dE_ci_high")


def summary_fields() -> tuple[str, ...]:
    """The summary's columns: the round, every declared metric (``core.metrics``, extensions' included), the
    verdict. A function, because an extension may declare a metric after this module is imported."""
    return (*ROUND_FIELDS, *METRICS, *VERDICT_FIELDS)


CONFIDENCE = 0.95  # of the paired interval of ticket - dense per-pair E


@dataclass
class Verdict:
    """Which rounds of one run match its dense round 0 (the paper's verdict), and its extreme sparsity.

    Matching is the paper's strict rule on one run: E <= E_dense * (1 + tolerance).
    Whether a gap is noise is judged across replicates (runs differing only in the
    seed) by ``lottery-style report`` (:mod:`lottery_style.tools.report`); one run only
    records, as information, the paired interval of its per-pair differences.
    """

    dense_E: float
    tolerance: float
    matching: list[bool] = field(default_factory=list)
    extreme_sparsity: float = 0.0  # the sparsest ticket of the unbroken matching run from dense (see extreme_sparsity)
    highest_matching_sparsity: float = 0.0  # the highest sparsity that matched at all (0 when none did)


def extreme_sparsity(sparsities: Sequence[float], matches: Sequence[bool]) -> tuple[float, float]:
    """The extreme sparsity and the highest matching sparsity of rounds given by sparsity and verdict.

    The extreme sparsity is the sparsest ticket of the unbroken run of matching
    tickets from the dense model: every sparsity up to and including it matches
    (0 when the first pruned round does not). This is how the lottery-ticket
    papers read a series of IMP rounds (Kong et al. 2022's "extreme sparsity"; the
    maximum sparsity at which IMP subnetworks are matching in Chen et al. 2020 and
    Frankle et al. 2020): each ticket is pruned from the previous one, and the claim
    is that the model can be pruned that far and still match; a ticket that matches
    above a sparsity that failed is a crossing of the dense line that noise alone
    can make. The highest sparsity that matched at all is returned beside it; the
    two differ exactly when a lower sparsity failed.
    """
    extreme = 0.0
    for sparsity, match in sorted(zip(sparsities, matches)):
        if not match:
            break
        extreme = sparsity
    return extreme, max((s for s, m in zip(sparsities, matches) if m), default=0.0)


def is_matching(E: float, dense_E: float, tolerance: float = 0.0) -> bool:
    """The paper's rule: a ticket matches when its test error is no greater than the dense model's (+ tolerance)."""
    return float(E) <= float(dense_E) * (1.0 + tolerance)


def matching_verdict(rows: Sequence[dict[str, Any]], tolerance: float = 0.0) -> Verdict:
    """Matching = the ticket's test error is no greater than the dense model's (the paper's definition).

    ``rows`` are per-round metrics sorted by round with round 0 dense.
    """
    if not rows or rows[0]["round"] != 0:
        raise ValueError("a verdict needs the dense round 0 as the first row")
    dense_E = float(rows[0]["E"])
    verdict = Verdict(dense_E=dense_E, tolerance=tolerance)
    verdict.matching = [is_matching(row["E"], dense_E, tolerance) for row in rows]
    verdict.extreme_sparsity, verdict.highest_matching_sparsity = extreme_sparsity(
        [float(row["sparsity"]) for row in rows], verdict.matching
    )
    return verdict


def paired_difference(ticket: Sequence[float], dense: Sequence[float]) -> tuple[float, float | None, float | None]:
    """Mean of ticket - dense per-pair E on the same fixed pairs, with its two-sided ``CONFIDENCE`` interval.

    A t interval (Student's t with n-1 degrees of freedom) on the paired
    differences: the uncertainty of the mean gap due to the choice of evaluation
    pairs. Information only; the interval is None with fewer than two pairs.
    """
    if len(ticket) != len(dense) or not ticket:
        raise ValueError(f"paired errors need the same pairs: {len(ticket)} ticket vs {len(dense)} dense values")
    diffs = [a - b for a, b in zip(ticket, dense)]
    mean = statistics.fmean(diffs)
    if len(diffs) < 2:
        return mean, None, None
    half = float(t.ppf(0.5 + CONFIDENCE / 2, len(diffs) - 1)) * statistics.stdev(diffs) / math.sqrt(len(diffs))
    return mean, mean - half, mean + half


def summary_rows(
    run_dir: str | Path, tolerance: float, evaluation: str | None = None
) -> tuple[list[dict[str, Any]], Verdict]:
    """Per-round rows of a run folder (finished rounds only; with ``evaluation``, the rounds evaluated under that
    name, from that evaluation's metrics) with the verdict and the paired interval filled in."""
    metrics = [round_metrics(ticket_dir, evaluation) for ticket_dir in evaluated_rounds(run_dir, evaluation)]
    rows = [{key: m.get(key) for key in summary_fields()} for m in metrics]
    verdict = matching_verdict(rows, tolerance)
    dense_pairs = metrics[0].get("per_pair_E")
    for row, m, match in zip(rows, metrics, verdict.matching):
        row["matching"] = match
        if dense_pairs and m.get("per_pair_E"):
            row["dE_mean"], row["dE_ci_low"], row["dE_ci_high"] = paired_difference(m["per_pair_E"], dense_pairs)
    return rows, verdict


def write_summary(run_dir: str | Path, tolerance: float) -> tuple[list[dict[str, Any]], Verdict]:
    """Write ``summary.csv`` and ``summary.json`` (rows + verdict) atomically."""
    run_dir = Path(run_dir)
    rows, verdict = summary_rows(run_dir, tolerance)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=summary_fields())
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(run_dir / SUMMARY_CSV, buffer.getvalue())
    summary = {"rounds": rows, "verdict": asdict(verdict), SKIPPED_IMAGES: run_skipped_images(run_dir)}
    atomic_write_json(run_dir / SUMMARY_JSON, summary)
    return rows, verdict


def run_skipped_images(run_dir: str | Path) -> dict[str, Any]:
    """The unreadable images every finished round recorded (``metrics.json``), each file once."""
    records = [read_metrics(ticket_dir).get(SKIPPED_IMAGES) or {} for ticket_dir in finished_rounds(run_dir)]
    return merged_record(entry for record in records for entry in record.get("files", []))


def _pct(value: float | None) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{100 * value:.1f}%"


def _ci(row: dict[str, Any]) -> str:
    if row.get("dE_mean") is None:
        return "-"
    low, high = row.get("dE_ci_low"), row.get("dE_ci_high")
    return f"{row['dE_mean']:+.3g}" + ("" if low is None else f" [{low:+.3g}, {high:+.3g}]")


def verdict_line(verdict: Verdict) -> str:
    """The table's footer: the extreme sparsity, and the highest matching sparsity when a lower one failed."""
    rule = f"E <= dense x {1 + verdict.tolerance:g}"
    line = f"extreme sparsity: {_pct(verdict.extreme_sparsity)} (every sparsity up to it matches: {rule})"
    if verdict.highest_matching_sparsity != verdict.extreme_sparsity:
        highest = _pct(verdict.highest_matching_sparsity)
        line += f"; highest matching sparsity: {highest} (a lower sparsity does not match)"
    return line


def table_metrics(rows: Sequence[dict[str, Any]]) -> list[Metric]:
    """The declared table metrics the rows have a value of (a run recorded before a metric existed has none)."""
    return [metric for metric in METRICS.values() if metric.table and any(row.get(metric.name) is not None for row in rows)]


def format_table(rows: Sequence[dict[str, Any]], verdict: Verdict) -> str:
    """The plain-text table printed at the end of a run: the round, its sparsity, every table metric
    (``core.metrics``), the paired difference and the verdict."""
    ci = f"dE [{100 * CONFIDENCE:g}% CI]"
    metrics = table_metrics(rows)
    lines = [f"{'round':>5}  {'sparsity':>8}  " + "".join(f"{m.header:>{m.width}}  " for m in metrics) + f"{ci:>28}  {'matching':>8}"]
    for row, match in zip(rows, verdict.matching):
        values = "".join(f"{'-' if row.get(m.name) is None else format(row[m.name], m.fmt):>{m.width}}  " for m in metrics)
        lines.append(f"{row['round']:>5}  {_pct(row['sparsity']):>8}  {values}{_ci(row):>28}  {'yes' if match else 'no':>8}")
    lines.append(verdict_line(verdict))
    legend = [f"{m.header}: {m.help}" for m in metrics]
    lines.append("; ".join([*legend, "dE: ticket - dense per-pair E on the same pairs (information)",
                            "across seeds: lottery-style report on the replicates"]))  # fmt: skip
    return "\n".join(lines)
