"""The x axis of lottery-ticket figures, shared by the report's sections and the notebook."""

from __future__ import annotations

from collections.abc import Iterable

from matplotlib.axes import Axes
from matplotlib.ticker import FixedFormatter, FixedLocator, NullLocator


def remaining(sparsity: float) -> float:
    """Weights remaining (%) of a sparsity: the x axis of lottery-ticket papers."""
    return 100 * (1 - sparsity)


def remaining_axis(axis: Axes, sparsities: Iterable[float]) -> None:
    """The field's x axis: weights remaining (%) on a log scale, decreasing to the right, the schedule's points
    (100, 80, 64, 51.2, ...) as its ticks, so the high sparsities where tickets and controls part stay readable."""
    ticks = sorted({round(remaining(s), 6) for s in sparsities}, reverse=True)
    axis.set_xscale("log")
    axis.set_xlim(ticks[0] * 1.08, ticks[-1] / 1.08)
    axis.xaxis.set_major_locator(FixedLocator(ticks))
    axis.xaxis.set_major_formatter(FixedFormatter([f"{t:.3g}" for t in ticks]))
    axis.xaxis.set_minor_locator(NullLocator())
    axis.set_xlabel("weights remaining (%, log scale)")
