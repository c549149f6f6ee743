"""The report's early-bird section: mask distance vs step, and the ticket's E and cost beside IMP's.

You et al. (2020) sell early-bird tickets on cost, so the comparison is E *and*
training steps at the same sparsity. The cost of an early-bird ticket is the
steps of round 0 up to its draw (the whole round 0 without a draw) plus its own
training; an IMP ticket of round r costs round 0 and r pruned rounds. IMP runs
are compared when they are the same experiment but for the method (and the
early-bird options): same model, data, schedule, steps and rewinding; every such
IMP run counts, each seed once, and its E is the mean over them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from matplotlib.figure import Figure

from lottery_style.engine.methods.imp import IMP
from lottery_style.tickets.paths import EARLY_BIRD_SUMMARY, round_dir

if TYPE_CHECKING:
    from lottery_style.tools.report import Run

# Keys in which an IMP run may differ from an early-bird run and still be its comparison.
METHOD_KEYS = ("pruning.method", "pruning.early_bird.", "seed")


def early_bird_record(run: Run) -> dict[str, Any] | None:
    """The watch's record of a run's round 0 (``early_bird.json``), if it has one."""
    path = round_dir(run.path, 0) / EARLY_BIRD_SUMMARY
    return json.loads(path.read_text()) if path.is_file() else None


def _experiment(run: Run) -> dict[str, Any]:
    return {k: v for k, v in run.identity.items() if not k.startswith(METHOD_KEYS)}


def distance_figure(runs: Sequence[Run], title: str = "") -> Figure:
    """Normalised Hamming distance between consecutive magnitude masks vs step, one line per run and target,
    the threshold dashed, each draw marked."""
    figure = Figure(figsize=(6, 4), layout="constrained")
    axis = figure.subplots()
    for run in runs:
        record = early_bird_record(run)
        assert record is not None, f"{run.path} has no {EARLY_BIRD_SUMMARY}"
        for target in record["targets"]:
            line = axis.plot(target["steps"], target["distances"], marker=".",
                             label=f"{100 * target['target']:.1f}% sparse, seed {run.seed}")[0]  # fmt: skip
            if target["drawn_step"] is not None:
                drawn = target["steps"].index(target["drawn_step"])
                axis.plot([target["drawn_step"]], [target["distances"][drawn]], marker="*", markersize=12,
                          color=line.get_color(), linestyle="none")  # fmt: skip
        axis.axhline(record["targets"][0]["threshold"], color="black", linestyle="--", linewidth=1, label="threshold")
    axis.set(xlabel="step of round 0", ylabel="mask distance (normalised Hamming)", yscale="log", title=title)
    axis.grid(alpha=0.3)
    axis.legend(fontsize="small")
    return figure


def comparison(early_bird_runs: Sequence[Run], runs: Sequence[Run]) -> list[dict[str, Any]]:
    """Per early-bird run and pruned round: its draw, E and cost, and the comparable IMP runs' mean E and cost."""
    rows = []
    for run in early_bird_runs:
        record = early_bird_record(run)
        assert record is not None, f"{run.path} has no {EARLY_BIRD_SUMMARY}"
        imp = {r.seed: r for r in runs if r.method == IMP and _experiment(r) == _experiment(run)}
        for row, target in zip(run.rows[1:], record["targets"]):
            imp_rows = [r for other in imp.values() for r in other.rows if round(r["sparsity"], 6) == round(row["sparsity"], 6)]
            drawn = target["drawn_step"]
            rows.append({
                "run": str(run.path), "seed": run.seed, "sparsity": row["sparsity"], "drawn_step": drawn, "E": row["E"],
                "cost_steps": (record["round_zero_steps"] if drawn is None else drawn) + record["ticket_steps"],
                "imp_seeds": len(imp_rows), "imp_E": sum(r["E"] for r in imp_rows) / len(imp_rows) if imp_rows else None,
                "imp_cost_steps": record["round_zero_steps"] + row["round"] * record["ticket_steps"],
            })  # fmt: skip
    return rows


def comparison_cells(rows: Sequence[Mapping[str, Any]]) -> list[list[Any]]:
    """The table of the page: one line per early-bird ticket."""
    return [
        [r["seed"], f"{100 * r['sparsity']:.2f}%", "none (end of round 0)" if r["drawn_step"] is None else r["drawn_step"],
         f"{r['E']:.5g}", r["cost_steps"], "-" if r["imp_E"] is None else f"{r['imp_E']:.5g} (n={r['imp_seeds']})",
         r["imp_cost_steps"]]
        for r in rows
    ]  # fmt: skip


COMPARISON_HEADER = ("seed", "sparsity", "drawn at step", "early-bird E", "early-bird cost (steps)",
                     "IMP E at this sparsity", "IMP cost (steps)")  # fmt: skip
