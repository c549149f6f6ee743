"""The progress bar names the run, the round and its sparsity, and counts the schedule's step (issue 22, point 12)."""

from __future__ import annotations

from pathlib import Path

from lottery_style.engine.lottery import LotteryRun
from tests.conftest import TINY, compose_train


def test_the_bar_shows_run_round_sparsity_and_the_schedule_step(tmp_path: Path, capsys) -> None:
    """Weight rewinding to step 2 of 4: round 0 fits steps 0..2 and 2..4, round 1 fits 2..4 (two steps of its own,
    steps 3 and 4 of the schedule). Lightning's own bar read "Epoch 0/-2" in each of the three fits."""
    run_dir = tmp_path / "adain-bar"
    overrides = [*TINY, "pruning.rounds=1", "pruning.rewind=step", "pruning.rewind_step=2", "training.progress_bar=true"]
    LotteryRun(compose_train(overrides, output_dir=run_dir), run_dir).run()
    out = capsys.readouterr().out
    bars = [line for line in out.splitlines() if line.startswith("adain-bar round ")]
    assert len(bars) == 3, out
    assert bars[0].startswith("adain-bar round 0/1 sparsity 0.0% ") and "step: 2/4" in bars[0], bars
    assert bars[1].startswith("adain-bar round 0/1 sparsity 0.0% ") and "step: 4/4" in bars[1], bars
    assert bars[2].startswith("adain-bar round 1/1 sparsity 20.0% ") and "step: 4/4" in bars[2], bars
    assert "2/2" in bars[2]  # the bar itself counts the fit's own steps: round 1 trains 2 of them
    assert "Epoch" not in out and "v_num" not in out
