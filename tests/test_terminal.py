"""The terminal of a run, as a user sees it: the real CLI in a subprocess, W&B offline without an API key."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from lottery_style.engine.terminal import round_line
from tests.conftest import TINY

pytestmark = pytest.mark.slow

MAX_LINES = 30  # the budget for a 2-round run (stdout + stderr)
TABLE_HEADER = "round  sparsity"


def run_quickstart(tmp_path: Path, logger: str, *extra: str) -> tuple[list[str], Path]:
    """A 2-round run (dense round 0 + one pruned round); every line it printed, stdout then stderr."""
    run_dir = tmp_path / f"run-{logger}"
    args = [sys.executable, "-m", "lottery_style", *TINY, f"logger={logger}", "pruning.rounds=1", *extra]
    # The test session silences W&B through the environment; the user's terminal has no such variable.
    env = {k: v for k, v in os.environ.items() if k not in ("WANDB_SILENT", "WANDB_API_KEY")}
    env["WANDB_MODE"] = "offline"
    result = subprocess.run(
        [*args, f"hydra.run.dir={run_dir}"], cwd=tmp_path, env=env, capture_output=True, check=False, text=True, timeout=900
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.splitlines() + result.stderr.splitlines(), run_dir


def test_wandb_offline_run_prints_rounds_table_summary_and_sync_command_only(tmp_path: Path) -> None:
    lines, run_dir = run_quickstart(tmp_path, "wandb")
    text = "\n".join(lines)
    assert len(lines) <= MAX_LINES, text
    assert [line.split("  ")[0] for line in lines if re.match(r"round \d+/", line)] == ["round 0/1", "round 1/1"]
    assert TABLE_HEADER in text and "extreme sparsity" in text
    assert f"summary: {run_dir / 'summary.csv'}" in lines
    sync = [line for line in lines if "wandb sync" in line]
    assert sync == [f"W&B ran offline; upload with: wandb sync {run_dir / 'wandb'}/offline-run-*"]
    for chatter in ("wandb:", "Tip:", "GPU available", "Seed set to", "Run summary", "Trainable params"):
        assert chatter not in text, chatter
    assert len(list((run_dir / "wandb").glob("offline-run-*"))) == 3  # two rounds and the summary run were logged


def test_verbose_brings_the_libraries_output_back(tmp_path: Path) -> None:
    lines, _ = run_quickstart(tmp_path, "wandb", "logger.verbose=true")
    text = "\n".join(lines)
    assert len(lines) > MAX_LINES
    for chatter in ("wandb: Run summary", "GPU available", "Seed set to", "Trainable params"):
        assert chatter in text, chatter


def test_csv_run_with_a_branch_labels_the_branch_lines_and_table(tmp_path: Path) -> None:
    lines, run_dir = run_quickstart(tmp_path, "csv", "pruning.branches=[random_prune]")
    text = "\n".join(lines)
    assert len(lines) <= MAX_LINES, text
    branch_dir = run_dir / "branches" / "random_prune"
    assert [line.split("  ")[0] for line in lines if "round 1/1" in line] == ["round 1/1", "[random_prune] round 1/1"]
    heading = lines.index(f"[random_prune] branch of this run, in {branch_dir}:")
    assert lines[heading + 1].startswith(TABLE_HEADER)
    assert f"summary: {run_dir / 'summary.csv'}" in lines and f"summary: {branch_dir / 'summary.csv'}" in lines
    assert "wandb sync" not in text  # nothing to upload without W&B


def test_round_line_names_sparsity_error_verdict_and_time() -> None:
    metrics = {"round": 2, "sparsity": 0.36, "E": 5.1234567}
    assert round_line(metrics, 3, 5.0, False, 12.34) == (
        "round 2/3  sparsity 36.0%  E 5.1235  not matching (dense E 5)  12.3 s"
    )
    dense = {"round": 0, "sparsity": 0.0, "E": 5.0}
    assert round_line(dense, 3, 5.0, True, None, "oneshot") == "[oneshot] round 0/3  dense  E 5  done before"
