"""The quickstart with the real (Caffe) encoder, and the signature preset, at test size."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lottery_style.engine.compose import compose
from lottery_style.engine.lottery import LotteryRun
from tests.conftest import TINY, compose_train

CONTROLS = ("random_prune", "random_reinit", "oneshot")


@pytest.mark.slow
def test_the_quickstart_loss_terms_are_of_comparable_scale_with_the_caffe_encoder(tmp_path: Path) -> None:
    """A random VGG gives E_content ~1e-4 against E_style ~1e3; the real encoder puts both at order 1-100,
    in the quickstart preset's dense round and its ticket (rewound to step 2 of 4 here)."""
    overrides = [*TINY, "experiment=quickstart", "model.encoder.weights=auto", "training.steps=4",
                 "pruning.rewind_step=2", "pruning.rounds=1"]  # fmt: skip
    cfg = compose_train(overrides, output_dir=tmp_path)
    rows = LotteryRun(cfg, tmp_path).run()["rows"]
    assert len(rows) == 2
    for row in rows:
        assert 1.0 <= row["E_content"] <= 100.0 and 1.0 <= row["E_style"] <= 100.0, row
    assert '"weight_source": "caffe"' in (tmp_path / "round_00" / "metrics.json").read_text()


@pytest.mark.slow
def test_the_signature_preset_runs_two_seeds_and_writes_a_report_naming_every_method(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    args = [sys.executable, "-m", "lottery_style.train", "-m", "experiment=signature", *TINY, "seed=0,1",
            "training.steps=2", "pruning.rewind_step=1", "pruning.rounds=1", "data.eval_size=32", "data.eval_load_size=48",
            f"hydra.sweep.dir={sweep}"]  # fmt: skip
    env = {**os.environ, "CI": "true", "OMP_NUM_THREADS": "1"}
    result = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, check=False, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    page = (sweep / "report" / "report.html").read_text()
    for method in ("imp", *CONTROLS):
        assert f"<h3>{method}" in page, method
    numbers = json.loads((sweep / "report" / "report.json").read_text())["adain"]
    assert {series: numbers[series]["extreme"]["replicates"]["replicates"] for series in ("imp", *CONTROLS)} == {
        series: 2 for series in ("imp", *CONTROLS)
    }  # each method one series, its two seeds replicates of it
    for seed in ("0", "1"):
        assert all((sweep / seed / "branches" / control / "summary.csv").is_file() for control in CONTROLS)


def test_the_early_signature_preset_is_in_the_lottery_regime() -> None:
    """Tickets rewound to at most 10% of training by weight rewinding to step k > 0, IMP's controls as branches,
    at least 87.5% sparsity, 3 seeds."""
    cfg = compose_train(["experiment=signature_early"])
    assert str(cfg.pruning.rewind) == "step" and 0 < cfg.pruning.rewind_step <= 0.1 * cfg.training.steps
    assert str(cfg.pruning.method) == "imp" and {"random_prune", "random_reinit"} <= set(cfg.pruning.branches)
    assert 1 - (1 - cfg.pruning.rate) ** cfg.pruning.rounds >= 0.875
    assert (cfg.model.name, cfg.model.train_encoder, list(cfg.pruning.scope)) == ("adain", False, ["decoder"])
    assert dict(compose(["experiment=signature_early"], return_hydra_config=True).hydra.sweeper.params) == {"seed": "0,1,2"}


@pytest.mark.slow
def test_the_early_signature_preset_runs_three_seeds_to_its_last_sparsity_with_the_paired_verdict(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    args = [sys.executable, "-m", "lottery_style.train", "-m", "experiment=signature_early", *TINY, "training.steps=10",
            "pruning.rewind_step=1", "data.eval_size=32", "data.eval_load_size=48", f"hydra.sweep.dir={sweep}"]  # fmt: skip
    env = {**os.environ, "CI": "true", "OMP_NUM_THREADS": "1"}
    result = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, check=False, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    numbers = json.loads((sweep / "report" / "report.json").read_text())["adain"]
    assert sorted(numbers) == ["imp", "random_prune", "random_reinit"]
    for series in numbers.values():
        assert series["extreme"]["seeds"] == [0, 1, 2]
        paired = series["paired"]
        assert [row["sparsity"] for row in paired["rounds"]] == [0.5, 0.75, 0.875]
        assert all((row["paired"]["seeds"], row["paired"]["pairs"]) == (3, 64) for row in paired["rounds"])
        assert set(paired["extreme_sparsity"]) == {"paper_mean", "chen", "paired"}
    assert "Verdicts side by side" in (sweep / "report" / "report.html").read_text()
