"""The analysis notebook runs top to bottom on a tiny run folder and writes its figures."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from lottery_style.engine.lottery import LotteryRun
from tests.conftest import TINY, compose_train

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "analysis.py"


def test_notebook_is_a_jupytext_percent_notebook_with_parameters() -> None:
    jupytext = pytest.importorskip("jupytext")  # the dev extra
    notebook = jupytext.read(NOTEBOOK)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert len(code) >= 5
    assert "parameters" in code[0].metadata.get("tags", [])


@pytest.mark.slow
def test_notebook_draws_every_figure_from_a_tiny_run(tmp_path: Path) -> None:
    run_dir, figures = tmp_path / "run", tmp_path / "figures"
    LotteryRun(compose_train([*TINY, "training.steps=2", "pruning.rounds=1"], output_dir=run_dir), run_dir).run()
    env = {
        **os.environ, "LOTTERY_RUNS": str(run_dir), "LOTTERY_FIGURES": str(figures),
        "LOTTERY_WANDB_GROUP": "quickstart/run", "MPLBACKEND": "Agg",  # offline (conftest): W&B is skipped
    }  # fmt: skip
    result = subprocess.run([sys.executable, str(NOTEBOOK)], env=env, capture_output=True, check=False, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    names = sorted(p.name for p in figures.iterdir())
    assert names == ["error_vs_sparsity_adain.png", "grids_adain_imp.png", "part_sparsity_adain.png"]
    for name in names:
        with Image.open(figures / name) as image:
            assert min(image.size) > 100, name
