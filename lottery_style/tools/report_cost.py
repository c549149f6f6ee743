"""The report's quality against cost: E (and the structure) against the FLOPs a ticket keeps, per series.

A deployment pays for the kernels a ticket runs, not for its zeros: a weight
(unstructured) ticket runs every dense kernel, so its kept FLOPs are the dense
model's and its points stand on the dense model's vertical, while a channel
ticket's convs run only their kept channels (``flops_kept`` of every round's
``metrics.json``, :mod:`lottery_style.engine.cost`). So channel and weight tickets
of one run are compared on the axis a deployment cares about.

Each series is drawn where :func:`~lottery_style.tools.report.aggregate` judges it
(the sparsities every replicate reached), mean ± std over the replicates on both
axes: the kept FLOPs of a channel ticket differ between seeds when the channels
removed lie in different layers. The dense model is one marked point, over every
run. A run recorded before the cost fields existed has none: the figure is left
out and the page says which run lacks them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from matplotlib.figure import Figure

from lottery_style.core.config import Granularity
from lottery_style.core.metrics import METRICS
from lottery_style.tools.plot_axes import points_axis

if TYPE_CHECKING:
    from lottery_style.tools.report import Run

RECORDED = ("flops", "flops_kept", "params_nonzero", "params_total", "file_bytes")  # as metrics.json holds them
COST_FIELDS = (*RECORDED, "flops_ratio")  # what the report averages over replicates per sparsity
GIGA = 1e9
COST_HEADER = ("GFLOPs kept", "FLOPs kept / dense", "params kept (nonzero)")


def round_cost(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """The cost fields of one round's ``metrics.json`` that it recorded, the kept FLOPs' ratio to dense (its
    ``flops`` is the dense model's count: a masked ticket runs every dense kernel) and its granularity (a run
    older than channel tickets has weight tickets)."""
    cost: dict[str, Any] = {key: metrics[key] for key in RECORDED if metrics.get(key) is not None}
    if "flops" in cost and "flops_kept" in cost:
        cost["flops_ratio"] = cost["flops_kept"] / cost["flops"]
    return {**cost, "granularity": metrics.get("granularity", Granularity.weight.value)}


def missing_cost(runs: Sequence[Run]) -> str | None:
    """Why a model's report draws no cost figure (a round without kept FLOPs: a run recorded before they were
    counted, a summary whose round folders are gone), in one line; None when every round has them."""
    lacking = [run for run in runs if any(row.get("flops_kept") is None for row in run.rows)]
    if not lacking:
        return None
    return (f"No quality-vs-cost figure: {len(lacking)} of {len(runs)} runs have rounds without recorded FLOPs "
            f"(metrics.json older than the cost fields, or round folders gone), e.g. {lacking[0].path}")  # fmt: skip


def series_label(label: str, granularity: str, replicates: int) -> str:
    """A series' legend entry: its label with its granularity (unless the label names it) and its n seeds."""
    named = label if "granularity=" in label else f"{label}, {granularity}"
    return f"{named} (n={replicates})"


def cost_arrays(points: Sequence[Mapping[str, Any]], metrics: Sequence[str]) -> dict[str, list[float]]:
    """What one series' line is drawn from: at its judged points (``aggregate``), the sparsity, the kept GFLOPs,
    their ratio to dense and each of ``metrics``, mean and std over the replicates."""
    judged = [p for p in points if p["judged"]]
    arrays = {
        "sparsity": [p["sparsity_mean"] for p in judged],
        "gflops_kept_mean": [p["flops_kept_mean"] / GIGA for p in judged],
        "gflops_kept_std": [p["flops_kept_std"] / GIGA for p in judged],
        "flops_ratio_mean": [p["flops_ratio_mean"] for p in judged],
    }
    for metric in metrics:
        arrays[f"{metric}_mean"] = [p[f"{metric}_mean"] for p in judged]
        arrays[f"{metric}_std"] = [p[f"{metric}_std"] for p in judged]
    return arrays


def cost_figure(
    series: Mapping[str, Mapping[str, Sequence[float]]],
    dense: Mapping[str, Sequence[float]],
    metrics: Sequence[str] = ("E",),
    title: str = "",
) -> Figure:
    """One panel per metric against kept GFLOPs (log scale, cheaper to the right, as sparser is in the
    E-vs-sparsity figures): a line per series (legend entry -> :func:`cost_arrays`) with error bars of ± std
    over its seeds on both axes, its sparsest point labelled with its sparsity, and the dense model (the same
    arrays of its one point) as a black star."""
    figure = Figure(figsize=(5.5 * len(metrics), 4), layout="constrained")
    axes = figure.subplots(1, len(metrics), squeeze=False)[0]
    ticks = [x for arrays in (*series.values(), dense) for x in arrays["gflops_kept_mean"]]
    for axis, metric in zip(axes, metrics):
        for label, arrays in series.items():
            x, y = arrays["gflops_kept_mean"], arrays[f"{metric}_mean"]
            drawn = axis.errorbar(x, y, xerr=arrays["gflops_kept_std"], yerr=arrays[f"{metric}_std"], marker="o",
                                  capsize=2, label=label)  # fmt: skip
            if arrays["sparsity"][-1] > 0:  # how far it got: a weight series' points all stand at the dense FLOPs
                axis.annotate(f"{100 * arrays['sparsity'][-1]:.1f}%", (x[-1], y[-1]), textcoords="offset points",
                              xytext=(4, 4), fontsize="small", color=drawn.lines[0].get_color())  # fmt: skip
        axis.errorbar(dense["gflops_kept_mean"], dense[f"{metric}_mean"], xerr=dense["gflops_kept_std"],
                      yerr=dense[f"{metric}_std"], marker="*", markersize=14, color="black", linestyle="none",
                      zorder=3, label="dense (round 0)")  # fmt: skip
        points_axis(axis, ticks, "GFLOPs kept per stylization (log scale)")
        axis.set_ylabel(f"{METRICS[metric].header} ({'lower' if METRICS[metric].lower_is_better else 'higher'} is better)")
        axis.grid(alpha=0.3)
        axis.legend(fontsize="small")
    if title:
        figure.suptitle(title)
    return figure


def cost_cells(point: Mapping[str, Any]) -> list[str]:
    """The round table's cost columns (:data:`COST_HEADER`) of one ``aggregate`` point; "-" where not recorded."""
    if point.get("flops_kept_mean") is None:
        return ["-"] * len(COST_HEADER)
    return [
        f"{point['flops_kept_mean'] / GIGA:.4g} ± {point['flops_kept_std'] / GIGA:.2g}",
        f"{100 * point['flops_ratio_mean']:.1f}%",
        f"{point['params_nonzero_mean']:,.0f} ± {point['params_nonzero_std']:,.0f}",
    ]
