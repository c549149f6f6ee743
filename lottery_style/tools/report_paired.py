"""The report's verdicts side by side: per series and sparsity, three rules over the same n seeds.

- the paper's rule read across seeds: the ticket's E averaged over the seeds is at
  most the dense round 0's E averaged over them (Kong et al. 2022 judge a mean);
- Chen et al. 2020's rule: at most that dense mean plus one standard deviation of
  the dense E over the seeds (:mod:`lottery_style.tools.report`);
- the paired verdict (:mod:`lottery_style.tickets.paired`): each seed's ticket set
  against its own dense round on the same pairs, non-inferior at a declared margin.

Each is judged at the sparsities every seed reached, with its n seeds and n pairs,
and each gives an extreme sparsity (:func:`lottery_style.tickets.verdict.extreme_sparsity`).
The per-pair values are read from the rounds' records (the training-time ones or a
named evaluation's), so the section is rebuilt without a model; a run recorded
before per-pair values were kept has no paired verdict ("-").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from lottery_style.tickets.paired import paired_verdict
from lottery_style.tickets.verdict import CONFIDENCE, extreme_sparsity

if TYPE_CHECKING:
    from lottery_style.tools.report import Run

RULES = ("paper_mean", "chen", "paired")  # the keys of the three verdicts in report.json, in the table's order


def side_by_side(runs: Sequence[Run], points: Sequence[Mapping[str, Any]], margin: float) -> dict[str, Any]:
    """The three verdicts at every judged pruned sparsity of one series (``points``: its
    :func:`~lottery_style.tools.report.aggregate`), and the extreme sparsity under each."""
    dense = [run.per_pair_E(0) for run in runs]
    rounds = []
    for point in points:
        if not point["judged"] or point["round"] == 0:
            continue
        tickets = [run.per_pair_E(index) for run, index in zip(runs, point["rounds"])]
        paired = None
        if all(values is not None for values in (*tickets, *dense)):
            try:
                paired = asdict(paired_verdict(tickets, dense, margin))  # type: ignore[arg-type]
            except ValueError as error:
                raise ValueError(f"{runs[0].path} and its replicates at {100 * point['sparsity_mean']:.2f}%: {error}") from None
        rounds.append({
            "sparsity": point["sparsity_mean"], "seeds": point["seeds"], "paper_mean": point["matching_mean"],
            "chen": point["matching_replicates"], "paired": paired,
        })  # fmt: skip
    sparsities = [row["sparsity"] for row in rounds]
    extreme = {rule: extreme_sparsity(sparsities, [_matches(row, rule) for row in rounds])[0] for rule in RULES}
    return {"margin": margin, "confidence": CONFIDENCE, "rounds": rounds, "extreme_sparsity": extreme}


def _matches(row: Mapping[str, Any], rule: str) -> bool:
    if rule == "paired":
        return row["paired"] is not None and bool(row["paired"]["non_inferior"])
    return bool(row[rule])


def verdict_header(margin: float) -> tuple[str, ...]:
    return ("sparsity", "n seeds", "n pairs", "paper: mean E <= dense mean", "Chen et al.: mean E <= dense mean + 1 std",
            f"paired: (ticket - dense) / dense E [{100 * CONFIDENCE:g}% CI]",
            f"paired: non-inferior at {100 * margin:g}% (CI upper end <= margin)")  # fmt: skip


def _yes(value: bool | None) -> str:
    return "-" if value is None else ("yes" if value else "no")


def _relative(paired: Mapping[str, Any]) -> str:
    interval = "" if paired["low"] is None else f" [{100 * paired['low']:+.2f}%, {100 * paired['high']:+.2f}%]"
    return f"{100 * paired['mean']:+.2f}%{interval}"


def verdict_cells(verdicts: Mapping[str, Any]) -> list[list[str]]:
    """The table's rows: one per judged sparsity, then the extreme sparsity under each rule."""
    rows = []
    for row in verdicts["rounds"]:
        paired = row["paired"]
        rows.append([
            f"{100 * row['sparsity']:.2f}%", str(row["seeds"]), "-" if paired is None else str(paired["pairs"]),
            _yes(row["paper_mean"]), _yes(row["chen"]), "-" if paired is None else _relative(paired),
            "-" if paired is None else _yes(paired["non_inferior"]),
        ])  # fmt: skip
    extreme = verdicts["extreme_sparsity"]
    rows.append(["extreme sparsity", "", "", *(f"{100 * extreme[rule]:.2f}%" for rule in ("paper_mean", "chen")), "",
                 f"{100 * extreme['paired']:.2f}%"])  # fmt: skip
    return rows
