"""The README's main command, run as a user would: a subprocess from another directory."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lottery_style.tickets.paths import TICKET_FILE
from tests.conftest import TINY

pytestmark = pytest.mark.slow


def run_cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "CI": "true"}
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, check=False, text=True, timeout=900, stdin=subprocess.DEVNULL)


def test_main_command_writes_tickets_metrics_and_grid(tmp_path) -> None:
    run_dir = tmp_path / "run"
    command = shutil.which("lottery-style") or f"{sys.executable} -m lottery_style"
    result = run_cli([*command.split(), *TINY, "pruning.rounds=1", f"hydra.run.dir={run_dir}"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    for index in (0, 1):
        ticket = run_dir / f"round_{index:02d}"
        for name in (TICKET_FILE, "metrics.json", "config.yaml", "grid.png", "DONE"):
            assert (ticket / name).is_file(), ticket / name
    assert (run_dir / "summary.csv").is_file()
    assert "extreme sparsity" in result.stdout
    assert f"summary: {run_dir / 'summary.csv'}" in result.stdout


def test_bad_config_fails_in_one_line_before_training(tmp_path) -> None:
    run_dir = tmp_path / "run"
    args = [sys.executable, "-m", "lottery_style.train", *TINY, "pruning.rate=1.5", f"hydra.run.dir={run_dir}"]
    result = run_cli(args, cwd=tmp_path)
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last == "lottery-style: pruning.rate=1.5 is invalid: expected in (0, 1)"
    assert not list(run_dir.glob("round_*"))
