"""The report's figures in the field's convention (issue 16): weights remaining on a log axis, every series shown."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg

from lottery_style.tools.plot_axes import remaining, spaced_ticks
from lottery_style.tools.report import Run, error_figure

ROUNDS = 10  # 100, 80, 64, 51.2, ... 10.7% remaining
SCHEDULE = [1 - 0.8**r for r in range(ROUNDS + 1)]


def run(method: str, seed: int, matching_rounds: int) -> Run:
    """Records of a finished run as the report loads them (weight granularity): E rises by 1 per round past its
    last matching one (dense E = 10)."""
    rows = [
        {"round": r, "sparsity": s, "E": 10.0 + max(0, r - matching_rounds) + 0.1 * seed, "E_content": 1.0,
         "E_style": 9.0, "matching": r <= matching_rounds, "granularity": "weight"}
        for r, s in enumerate(SCHEDULE)
    ]  # fmt: skip
    return Run(path=Path(f"/runs/{method}/{seed}"), model="adain", method=method, seed=seed, identity={"seed": seed},
               rows=rows)  # fmt: skip


@pytest.fixture
def series() -> dict[str, list[Run]]:
    return {
        "imp": [run("imp", 0, 8), run("imp", 1, 8)],
        "snip": [run("snip", 0, 3)],
        "synflow": [run("synflow", 0, 4)],
        "random_prune": [run("random_prune", 0, 0)],
    }


def test_the_x_axis_is_weights_remaining_on_a_log_scale_with_the_schedules_points(series) -> None:
    figure = error_figure(series, ("E_content", "E"))
    for axis in figure.axes:
        assert axis.get_xscale() == "log"
        assert list(axis.get_xticks()) == pytest.approx([100 * 0.8**r for r in range(ROUNDS + 1)])
        assert [t.get_text() for t in axis.get_xticklabels()][:5] == ["100", "80", "64", "51.2", "41"]
        assert axis.get_xlim()[0] > axis.get_xlim()[1]  # sparser to the right
        assert "weights remaining" in axis.get_xlabel()


def test_every_series_its_dense_line_and_its_extreme_sparsity_are_in_the_legend(series) -> None:
    axis = error_figure(series).axes[0]
    labels = [text.get_text() for text in axis.get_legend().get_texts()]
    assert "dense (round 0)" in labels
    assert {"imp (n=2)", "snip (n=1)", "synflow (n=1)", "random_prune (n=1)"} <= set(labels)
    assert f"imp extreme: {100 * SCHEDULE[8]:.1f}% sparse" in labels
    assert not any(label.startswith("random_prune extreme") for label in labels)  # nothing matched: no mark
    extreme_line = next(line for line in axis.get_lines() if line.get_label().startswith("imp extreme"))
    assert extreme_line.get_xdata()[0] == pytest.approx(remaining(SCHEDULE[8]))
    band = axis.collections[0].get_paths()[0].vertices  # the seeds' band of imp: mean +- std over its 2 seeds
    assert band[:, 1].max() - band[:, 1].min() > 0


def schedule_run(method: str, rate: float, rounds: int) -> Run:
    """A run pruning ``rate`` per round: its sparsities are another schedule's ticks."""
    sparsities = [1 - (1 - rate) ** r for r in range(rounds + 1)]
    rows = [{"round": r, "sparsity": s, "E": 10.0 + r, "E_content": 1.0, "E_style": 9.0, "matching": r <= 1,
             "granularity": "weight"} for r, s in enumerate(sparsities)]  # fmt: skip
    return Run(path=Path(f"/runs/{method}"), model="adain", method=method, seed=0, identity={"seed": 0}, rows=rows)


def drawn_tick_labels(figure) -> list:
    """The x tick labels of the first panel as the saved PNG places them (constrained layout done, Agg's fonts)."""
    FigureCanvasAgg(figure).draw()
    return [label for label in figure.axes[0].get_xticklabels() if label.get_visible() and label.get_text()]


def test_tick_labels_of_two_schedules_never_overlap() -> None:
    """Rates 0.2 and 0.4 put ticks at 64 and 60 % remaining (and 13.4 / 13, 21.6 / 21): printed side by side they
    read "6460". Each label's box, as drawn, must end before the next one starts."""
    series = {"imp": [schedule_run("imp", 0.2, 10)], "imp, pruning.rate=0.4": [schedule_run("imp", 0.4, 5)]}
    labels = drawn_tick_labels(error_figure(series))
    texts = [label.get_text() for label in labels]
    assert texts[0] == "100" and texts[-1] == "7.78", texts  # the dense and the sparsest point stay labelled
    assert not {"64", "60"} <= set(texts) and not {"13.4", "13"} <= set(texts), texts
    boxes = sorted((label.get_window_extent().x0, label.get_window_extent().x1) for label in labels)
    for (_, left_end), (right_start, _) in itertools.pairwise(boxes):
        assert right_start > left_end, (texts, boxes)
    values = [float(t) for t in texts]
    assert values == sorted(values, reverse=True)


def test_one_schedule_keeps_every_point_labelled(series) -> None:
    """At the report's width the default schedule (100, 80, ..., 10.7) has room for every label."""
    texts = [label.get_text() for label in drawn_tick_labels(error_figure(series))]
    assert texts == [f"{100 * 0.8**r:.3g}" for r in range(ROUNDS + 1)]


def test_spaced_ticks_drop_the_neighbour_of_a_close_point_and_keep_both_ends() -> None:
    ticks, view = [100, 80, 64, 60, 51.2], (110.0, 47.0)
    assert spaced_ticks(ticks, view, width=100, fontsize=10) == [100, 80, 64, 51.2]
    assert spaced_ticks(ticks, view, width=4000, fontsize=10) == [100, 80, 64, 60, 51.2]  # wide enough for all
    assert spaced_ticks([100, 80, 64, 60], (110.0, 55.0), width=100, fontsize=10) == [100, 80, 60]  # the end wins
