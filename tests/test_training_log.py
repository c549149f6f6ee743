"""Training logs (``round_XX/logs/metrics.csv``): on the schedule's step, and kept when a round resumes."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch

from lottery_style.engine.lottery import LotteryRun
from lottery_style.tickets.paths import LOGS_DIR, round_dir
from tests.conftest import TINY, Crash, compose_train, crashing_run

STEPS, REWIND_STEP = 4, 2  # debug=tiny trains 4 steps per round and logs every step


def log_rows(run_dir: Path, index: int) -> list[dict[str, str]]:
    with (round_dir(run_dir, index) / LOGS_DIR / "metrics.csv").open(newline="") as file:
        return list(csv.DictReader(file))


def steps(rows: list[dict[str, str]]) -> list[int]:
    return [int(row["step"]) for row in rows]


def test_every_fit_logs_the_step_of_round_0_it_corresponds_to(tmp_path) -> None:
    """Under weight rewinding to step k, round 0 is two fits (0..k, k..T) and the ticket one (k..T): each fit counts
    from 0, but the log carries round 0's step, so round 0 covers 0..T once and the ticket k..T."""
    overrides = [*TINY, "pruning.rounds=1", "pruning.rewind=step", f"pruning.rewind_step={REWIND_STEP}"]
    LotteryRun(compose_train(overrides, output_dir=tmp_path), tmp_path).run()
    assert steps(log_rows(tmp_path, 0)) == list(range(STEPS))
    assert steps(log_rows(tmp_path, 1)) == list(range(REWIND_STEP, STEPS))
    assert all(row["train/loss"] for index in (0, 1) for row in log_rows(tmp_path, index))


def test_a_resumed_round_keeps_the_rows_it_logged_before_the_interruption(tmp_path) -> None:
    """Round 1 dies before step 3; its last checkpoint is at step 2. The resumed fit trains, and logs, steps 2..T
    again: the rows before the checkpoint's step stay as they were, the later ones are the resumed fit's."""
    cfg = compose_train([*TINY, "pruning.rounds=1"], output_dir=tmp_path)
    with pytest.raises(Crash):
        crashing_run(round_index=1, step=3)(cfg, tmp_path).run()
    before = log_rows(tmp_path, 1)
    assert steps(before) == [0, 1, 2]
    (checkpoint,) = (round_dir(tmp_path, 1) / "checkpoints").glob("*/last.ckpt")
    resumed_from = torch.load(checkpoint, map_location="cpu", weights_only=True)["global_step"]
    assert resumed_from == 2
    LotteryRun(cfg, tmp_path).run()  # the same command again
    after = log_rows(tmp_path, 1)
    assert steps(after) == list(range(STEPS))
    assert after[:resumed_from] == before[:resumed_from]  # the same rows, value for value
