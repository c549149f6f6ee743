"""The report's figures in the field's convention (issue 16): weights remaining on a log axis, every series shown."""

from __future__ import annotations

from pathlib import Path

import pytest

from lottery_style.tools.plot_axes import remaining
from lottery_style.tools.report import Run, error_figure

ROUNDS = 10  # 100, 80, 64, 51.2, ... 10.7% remaining
SCHEDULE = [1 - 0.8**r for r in range(ROUNDS + 1)]


def run(method: str, seed: int, matching_rounds: int) -> Run:
    """Records of a finished run: E rises by 1 per round past its last matching one (dense E = 10)."""
    rows = [
        {"round": r, "sparsity": s, "E": 10.0 + max(0, r - matching_rounds) + 0.1 * seed, "E_content": 1.0,
         "E_style": 9.0, "matching": r <= matching_rounds}
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
