"""The metrics of a round, each declared once: its name, column header, format and which way is better.

A round is evaluated on the fixed held-out pairs (``engine.evaluation``); every
value it records is a declared :class:`Metric`, and every output takes its
columns from :data:`METRICS`: ``metrics.json`` (the mean over the pairs), the
run summary (``summary.csv`` / ``summary.json``), the table printed at the end
of a run, W&B (``eval/<name>``, ``by_round/<name>``) and ``lottery-style
report`` (mean and std over seeds, a figure each). A new metric is one
:func:`register_metric` call: computed for every model (``compute``), or by one
model (its ``StyleTransferModule.own_metrics``). The package's own are below,
computed by ``StyleTransferModule.test_errors`` and ``engine.evaluation``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import Tensor

# per pair of the batch, [B], from the content, style and stylized batches (each [B, 3, H, W], in [0, 1])
Compute = Callable[[Tensor, Tensor, Tensor], Tensor]


@dataclass(frozen=True)
class Metric:
    """One value measured on the evaluation pairs of every round.

    ``compute`` makes it every model's metric; without it, the model that has it returns it (the package's own
    come from ``test_errors``, ``E_std`` from the evaluation). ``table``: a column of the run's terminal table
    and of the report's round table (all are in the files); ``width``: its column's width in the terminal.
    """

    name: str  # the key in metrics.json, the summary, W&B (eval/<name>) and report.json
    header: str  # column header in the terminal table and the report
    fmt: str  # format spec of one value (".5g")
    lower_is_better: bool
    help: str  # what it measures, in one line: the table's legend, the report's header tooltip
    table: bool = True
    width: int = 12
    compute: Compute | None = None


METRICS: dict[str, Metric] = {}


def register_metric(metric: Metric) -> Metric:
    """Declare ``metric``: from now on every round records it and every output shows it."""
    if metric.name in METRICS:
        raise ValueError(f"metric name {metric.name!r} is registered twice")
    METRICS[metric.name] = metric
    return metric


for _metric in (
    Metric("E", "E", ".5g", True, "the paper's test error, E_content + E_style"),
    Metric("E_content", "E_content", ".5g", True, "the content terms of the model's loss"),
    Metric("E_style", "E_style", ".5g", True, "the style terms of the model's loss"),
    Metric("E_std", "E std", ".5g", True, "std of E over the evaluation pairs", table=False),
    Metric("ssim", "SSIM", ".4f", False, "SSIM of the output against the content", table=False),
    Metric("structure", "structure", ".3f", False, "content edges kept by the output (1 = all)", width=9),
):
    register_metric(_metric)
