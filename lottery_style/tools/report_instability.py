"""The report's instability section: barrier vs sparsity, barrier vs rewind step k, E along the path.

Reads each run's ``branches/instability/instability.json`` (:mod:`lottery_style.engine.instability`);
runs of one model that differ in ``pruning.rewind_step`` give the barrier at each k.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from matplotlib.figure import Figure

from lottery_style.engine.methods.instability import INSTABILITY
from lottery_style.tickets.paths import INSTABILITY_SUMMARY, branch_dir
from lottery_style.tools.plot_axes import remaining, remaining_axis

if TYPE_CHECKING:
    from lottery_style.tools.report import Run


def instability_records(runs: Sequence[Run]) -> list[dict[str, Any]]:
    """Every analysed mask of every run that has an instability branch, with the run's seed."""
    records = []
    for run in runs:
        path = branch_dir(run.path, INSTABILITY) / INSTABILITY_SUMMARY
        if path.is_file():
            records += [{**record, "seed": run.seed, "run": str(run.path)} for record in json.loads(path.read_text())]
    return records


def instability_figure(records: Sequence[dict[str, Any]], title: str = "", unit: str = "weights") -> Figure:
    """Three panels: barrier vs ``unit`` (weights or channels) remaining (a line per k), barrier vs k (a line per
    round), E along the path."""
    figure = Figure(figsize=(16, 4), layout="constrained")
    by_sparsity, by_k, path = figure.subplots(1, 3)
    steps = sorted({r["rewind_step"] for r in records})
    for k in steps:
        chosen = sorted((r for r in records if r["rewind_step"] == k), key=lambda r: r["sparsity"])
        by_sparsity.plot([remaining(r["sparsity"]) for r in chosen], [r["barrier"] for r in chosen], marker="o", label=f"k={k}")
    remaining_axis(by_sparsity, [r["sparsity"] for r in records], unit)
    by_sparsity.set(ylabel="error barrier (E)", title="barrier vs sparsity")
    for index in sorted({r["round"] for r in records}):
        chosen = sorted((r for r in records if r["round"] == index), key=lambda r: r["rewind_step"])
        by_k.plot([r["rewind_step"] for r in chosen], [r["barrier"] for r in chosen], marker="o",
                  label=f"round {index} ({100 * chosen[0]['sparsity']:.1f}% sparse)")  # fmt: skip
    by_k.set(xlabel="rewind step k", ylabel="error barrier (E)", title="barrier vs k")
    for record in (r for r in records if r["rewind_step"] == steps[-1]):
        path.plot(record["alphas"], record["E"], marker=".", label=f"{100 * record['sparsity']:.1f}% sparse")
    path.set(xlabel="interpolation (copy a = 0, copy b = 1)", ylabel="E", title=f"E along the path, k={steps[-1]}")
    for axis in (by_sparsity, by_k, path):
        axis.grid(alpha=0.3)
        axis.legend(fontsize="small")
    if title:
        figure.suptitle(title)
    return figure


def instability_cells(records: Sequence[dict[str, Any]]) -> list[list[Any]]:
    return [[r["seed"], r["rewind_step"], r["round"], f"{100 * r['sparsity']:.2f}%", f"{r['E'][0]:.5g}",
             f"{r['E'][-1]:.5g}", f"{max(r['E']):.5g}", f"{r['barrier']:.5g}"] for r in records]  # fmt: skip


INSTABILITY_HEADER = ("seed", "rewind step k", "round", "sparsity", "E copy a", "E copy b", "max E on the path", "barrier")
