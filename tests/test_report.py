"""`lottery-style report` on two tiny runs (IMP and random_prune) and on seed replicas of them."""

from __future__ import annotations

import json
import re
import shutil
import statistics
from pathlib import Path

import pytest
from omegaconf import OmegaConf
from PIL import Image

from lottery_style.cli import main
from lottery_style.lottery import LotteryRun
from lottery_style.report import load_run
from lottery_style.tickets import round_dir
from tests.conftest import TINY, compose_train


def tiny_run(out: Path, *overrides: str) -> Path:
    cfg = compose_train([*TINY, "pruning.rounds=1", "training.steps=2", *overrides], output_dir=out)
    LotteryRun(cfg, out).run()
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    imp = tiny_run(tmp_path_factory.mktemp("imp"))
    control = tiny_run(tmp_path_factory.mktemp("random_prune"), "pruning=random_prune", f"pruning.source_run={imp}")
    return {"imp": imp, "random_prune": control}


def summary(run: Path) -> dict:
    return json.loads((run / "summary.json").read_text())


def extreme_cell(page: str, method: str) -> list[str]:
    """The extreme-sparsity cells of ``method``'s row in the page's extreme-sparsity table."""
    row = re.search(rf"<tr><td>{method}</td><td>\d+</td><td>[^<]*</td><td>([^<]*)</td><td>([^<]*)</td></tr>", page)
    assert row, f"no extreme-sparsity row for {method}"
    return [row.group(1), row.group(2)]


def test_report_figures_and_extreme_sparsity_equal_the_runs_summaries(runs, tmp_path) -> None:
    assert main(["report", str(runs["imp"]), str(runs["random_prune"]), "--out", str(tmp_path)]) == 0
    for name in ("E_vs_sparsity-adain.png", "terms_vs_sparsity-adain.png"):
        with Image.open(tmp_path / name) as figure:
            assert figure.format == "PNG" and figure.width > 300 and figure.height > 200
    page = (tmp_path / "report.html").read_text()
    numbers = json.loads((tmp_path / "report.json").read_text())["adain"]
    for method, run in runs.items():
        verdict = summary(run)["verdict"]
        for key in ("extreme_sparsity", "extreme_sparsity_std"):
            assert numbers[method]["extreme"][key] == {"values": [verdict[key]], "mean": verdict[key], "std": 0.0}
        expected = [f"{100 * verdict[k]:.2f}% ± 0.00%" for k in ("extreme_sparsity", "extreme_sparsity_std")]
        assert extreme_cell(page, method) == expected
        rows = summary(run)["rounds"]
        assert [p["E_mean"] for p in numbers[method]["rounds"]] == [r["E"] for r in rows]
    # self-contained: both figures and the grids (dense + one per method) are embedded
    assert page.count('src="data:image/png;base64,') == 2 + 1 + len(runs)
    assert "src=\"http" not in page and "src='" not in page


def replica(run: Path, out: Path, seed: int, extreme: float, E_round1: float) -> Path:
    """A copy of ``run``'s records (no weights) as if trained with another seed."""
    shutil.copytree(run, out, ignore=shutil.ignore_patterns("*.pt", "logs"))
    for config in out.glob("round_*/config.yaml"):
        cfg = OmegaConf.load(config)
        cfg.seed = seed
        config.write_text(OmegaConf.to_yaml(cfg))
    data = summary(out)
    data["verdict"]["extreme_sparsity"] = extreme
    data["rounds"][1]["E"] = E_round1
    (out / "summary.json").write_text(json.dumps(data))
    return out


def test_seeds_of_a_method_are_aggregated(runs, tmp_path) -> None:
    base = summary(runs["imp"])
    high = base["verdict"]["extreme_sparsity"]
    sweep = tmp_path / "sweep"  # a folder of runs, as a multirun leaves them
    replica(runs["imp"], sweep / "0", 0, high, 1.0)
    replica(runs["imp"], sweep / "1", 1, 0.0, 3.0)
    assert main(["report", str(sweep), "--out", str(tmp_path / "report")]) == 0
    imp = json.loads((tmp_path / "report" / "report.json").read_text())["adain"]["imp"]
    assert imp["extreme"]["seeds"] == [0, 1]
    assert imp["extreme"]["extreme_sparsity"]["mean"] == pytest.approx(high / 2)
    assert imp["extreme"]["extreme_sparsity"]["std"] == pytest.approx(statistics.stdev([high, 0.0]))
    assert imp["rounds"][1]["E_mean"] == pytest.approx(2.0) and imp["rounds"][1]["E_std"] == pytest.approx(2**0.5)
    page = (tmp_path / "report" / "report.html").read_text()
    assert extreme_cell(page, "imp")[0] == f"{50 * high:.2f}% ± {100 * statistics.stdev([high, 0.0]):.2f}%"


def test_a_run_without_summary_is_read_from_its_rounds(runs, tmp_path) -> None:
    copy = tmp_path / "unfinished"
    shutil.copytree(runs["imp"], copy, ignore=shutil.ignore_patterns("*.pt", "logs", "summary.*"))
    shutil.rmtree(round_dir(copy, 1))  # round 1 still running
    run = load_run(copy)
    assert run.method == "imp" and run.seed == 0
    assert run.rows == summary(runs["imp"])["rounds"][:1]
