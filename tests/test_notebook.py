"""The analysis notebook runs top to bottom on a tiny run folder and writes its figures."""

from __future__ import annotations

import os
import re
import runpy
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


def test_figure_names_are_plain_and_the_part_legend_shows_only_parts_with_weights(tmp_path: Path, monkeypatch) -> None:
    """Two series of one method (labels "imp, pruning.rate=0.2" and "imp, pruning.rate=0.5") name no file with a
    space or a comma, and AdaIN's part-sparsity legend has no "transform": its transform holds no weights."""
    runs, figures = tmp_path / "runs", tmp_path / "figures"
    for rate in ("0.2", "0.5"):
        run_dir = runs / f"rate{rate}"
        LotteryRun(compose_train([*TINY, "training.steps=2", "pruning.rounds=1", f"pruning.rate={rate}"], output_dir=run_dir),
                   run_dir).run()  # fmt: skip
    monkeypatch.setenv("LOTTERY_RUNS", str(runs))
    monkeypatch.setenv("LOTTERY_FIGURES", str(figures))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    plt = pytest.importorskip("matplotlib.pyplot")
    plt.close("all")
    try:
        runpy.run_path(str(NOTEBOOK), run_name="__main__")
        names = sorted(p.name for p in figures.iterdir())
        assert "grids_adain_imp_pruning.rate-0.5.png" in names, names
        assert all(re.fullmatch(r"[A-Za-z0-9._-]+\.png", name) for name in names), names
        part_axes = [a for n in plt.get_fignums() for a in plt.figure(n).axes if a.get_xlabel() == "round"]
        assert len(part_axes) == 2  # one per series
        for axis in part_axes:
            assert [t.get_text() for t in axis.get_legend().get_texts()] == ["encoder", "decoder"], axis.get_title()
    finally:
        plt.close("all")
