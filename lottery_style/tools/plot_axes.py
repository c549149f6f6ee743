"""The x axes of lottery-ticket figures (weights remaining, kept FLOPs), shared by the report's sections and the notebook."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from matplotlib.axes import Axes
from matplotlib.ticker import FuncFormatter, Locator, NullLocator

# Width of a tick label's characters in ems: DejaVu Sans (matplotlib's default) draws every digit 0.636 em wide
# and "." 0.318 em; a little more here keeps a margin for other fonts. Neighbouring labels keep GAP_EM between them.
DIGIT_EM, POINT_EM, GAP_EM = 0.64, 0.32, 0.3


def remaining(sparsity: float) -> float:
    """Weights remaining (%) of a sparsity: the x axis of lottery-ticket papers."""
    return 100 * (1 - sparsity)


def tick_label(value: float) -> str:
    return f"{value:.3g}"


def label_width(label: str, fontsize: float) -> float:
    """A tick label's width in points, at least what matplotlib's default font draws."""
    return fontsize * sum(POINT_EM if char == "." else DIGIT_EM for char in label)


def spaced_ticks(ticks: Sequence[float], view: tuple[float, float], width: float, fontsize: float) -> list[float]:
    """The ticks (weights remaining, on a log axis ``width`` points wide showing ``view``) whose labels do not
    overlap: from the dense end, each tick that leaves room for its label after the last one kept; the sparsest
    tick is always kept (the end where tickets and controls part), replacing the one before it if they collide.

    Two series on different schedules put ticks close together (64 and 60 of rates 0.2 and 0.4), whose labels
    would print over each other ("6460").
    """
    low, high = sorted(view)
    span = math.log(high / low)
    visible = sorted((t for t in ticks if low <= t <= high), reverse=True)

    def apart(a: float, b: float) -> bool:
        distance = width * abs(math.log(a / b)) / span
        return distance >= (label_width(tick_label(a), fontsize) + label_width(tick_label(b), fontsize)) / 2 + GAP_EM * fontsize

    kept: list[float] = []
    for tick in visible:
        if not kept or apart(kept[-1], tick):
            kept.append(tick)
    if visible and kept[-1] != visible[-1]:
        while kept and not apart(kept[-1], visible[-1]):
            kept.pop()
        kept.append(visible[-1])
    return kept


class SpacedLocator(Locator):
    """The schedule's points as ticks, thinned by :func:`spaced_ticks` for the axes' width when it is drawn."""

    def __init__(self, ticks: Iterable[float]):
        self.ticks = sorted(set(ticks), reverse=True)

    def __call__(self) -> list[float]:
        view = self.axis.get_view_interval()
        return self.tick_values(float(view[0]), float(view[1]))

    def tick_values(self, vmin: float, vmax: float) -> list[float]:
        if self.axis is None:
            return list(self.ticks)
        axes = self.axis.axes
        width = axes.bbox.width * 72 / axes.figure.dpi  # display pixels -> points
        fontsize = self.axis.get_major_ticks(1)[0].label1.get_fontsize()
        return spaced_ticks(self.ticks, (vmin, vmax), width, fontsize)


def points_axis(axis: Axes, ticks: Iterable[float], label: str) -> None:
    """A log x axis, decreasing to the right, whose ticks are the plotted points themselves (values as drawn by
    :func:`tick_label`), those too close to label apart left unlabelled (:func:`spaced_ticks`)."""
    ticks = sorted(set(ticks), reverse=True)
    axis.set_xscale("log")
    axis.set_xlim(ticks[0] * 1.08, ticks[-1] / 1.08)
    axis.xaxis.set_major_locator(SpacedLocator(ticks))
    axis.xaxis.set_major_formatter(FuncFormatter(lambda value, _: tick_label(value)))
    axis.xaxis.set_minor_locator(NullLocator())
    axis.set_xlabel(label)


def remaining_axis(axis: Axes, sparsities: Iterable[float], unit: str = "weights") -> None:
    """The field's x axis: ``unit`` remaining (%) on a log scale, decreasing to the right, the schedule's points
    (100, 80, 64, 51.2, ...) as its ticks (:func:`points_axis`), so the high sparsities where tickets and controls
    part stay readable. ``unit`` names what the sparsity counts: a channel ticket's schedule counts channels."""
    points_axis(axis, {round(remaining(s), 6) for s in sparsities}, f"{unit} remaining (%, log scale)")
