"""`lottery-style report` on two tiny runs (IMP and random_prune) and on replicas of them (other seeds, other configs)."""

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
from lottery_style.engine.lottery import LotteryRun
from lottery_style.tickets.paths import round_dir
from lottery_style.tools.report import load_run
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


def extreme_cell(page: str, series: str) -> list[str]:
    """The cells after "seed values" of ``series``' row in the page's extreme-sparsity table."""
    row = re.search(rf"<tr><td>{re.escape(series)}</td><td>\d+</td><td>[^<]*</td>((?:<td>[^<]*</td>)+)</tr>", page)
    assert row, f"no extreme-sparsity row for {series}"
    return re.findall(r"<td>([^<]*)</td>", row.group(1))


def test_report_figures_and_extreme_sparsity_equal_the_runs_summaries(runs, tmp_path) -> None:
    assert main(["report", str(runs["imp"]), str(runs["random_prune"]), "--out", str(tmp_path)]) == 0
    for name in ("E_vs_sparsity-adain.png", "terms_vs_sparsity-adain.png"):
        with Image.open(tmp_path / name) as figure:
            assert figure.format == "PNG" and figure.width > 300 and figure.height > 200
    page = (tmp_path / "report.html").read_text()
    numbers = json.loads((tmp_path / "report.json").read_text())["adain"]
    for method, run in runs.items():
        verdict = summary(run)["verdict"]
        extreme = numbers[method]["extreme"]
        assert extreme["extreme_sparsity"] == {"values": [verdict["extreme_sparsity"]], "mean": verdict["extreme_sparsity"], "std": 0.0}
        # one replicate: the across-seed std is 0 and Chen et al.'s rule is the strict one
        assert extreme["replicates"]["extreme_sparsity"] == verdict["extreme_sparsity"]
        assert extreme["replicates"]["replicates"] == 1 and extreme["replicates"]["dense_E_std"] == 0.0
        cells = extreme_cell(page, method)
        assert cells[0] == f"{100 * verdict['extreme_sparsity']:.2f}% ± 0.00%"
        assert cells[2] == f"{100 * verdict['extreme_sparsity']:.2f}%"
        rows = summary(run)["rounds"]
        assert [p["E_mean"] for p in numbers[method]["rounds"]] == [r["E"] for r in rows]
    # self-contained: the three figures and the grids (dense + one per method) are embedded
    assert page.count('src="data:image/png;base64,') == 3 + 1 + len(runs)  # E, terms, structure; grids
    assert "src=\"http" not in page and "src='" not in page


def replica(run: Path, out: Path, seed: int, extreme: float, E_round1: float, **changes: object) -> Path:
    """A copy of ``run``'s records (no weights) as if trained with another seed (and other config ``changes``)."""
    shutil.copytree(run, out, ignore=shutil.ignore_patterns("*.pt", "logs"))
    for config in out.glob("round_*/config.yaml"):
        cfg = OmegaConf.load(config)
        cfg.seed = seed
        for key, value in changes.items():
            OmegaConf.update(cfg, key.replace("__", "."), value)
        config.write_text(OmegaConf.to_yaml(cfg))
    data = summary(out)
    data["verdict"]["extreme_sparsity"] = extreme
    data["rounds"][1]["E"] = E_round1
    data["rounds"][1]["matching"] = E_round1 <= data["rounds"][0]["E"]
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
    assert imp["extreme"]["seeds"] == [0, 1] and imp["extreme"]["replicates"]["replicates"] == 2
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


def test_series_are_experiments_and_replicates_are_distinct_seeds(runs, tmp_path, caplog) -> None:
    """Only the seed may differ between replicates: another learning rate is another series, the same seed twice
    is one replicate, and the across-seed verdict allows one std of the dense E over the replicates."""
    dense = summary(runs["imp"])["rounds"][0]["E"]
    sweep = tmp_path / "sweep"
    replica(runs["imp"], sweep / "a", 0, 0.0, dense * 1.01)
    replica(runs["imp"], sweep / "b", 1, 0.0, dense * 1.01)
    replica(runs["imp"], sweep / "b_again", 1, 0.0, dense * 5)  # seed 1 again: not a third replicate
    replica(runs["imp"], sweep / "lr", 0, 0.0, dense * 5, model__optimizer__lr=0.01)
    # replicate b's dense E is higher, so the dense E has a spread over seeds that covers the tickets' 1% gap
    data = summary(sweep / "b")
    data["rounds"][0]["E"] = dense * 1.04
    data["rounds"][1]["matching"] = True
    (sweep / "b" / "summary.json").write_text(json.dumps(data))
    with caplog.at_level("WARNING", logger="lottery_style.tools.report"):
        assert main(["report", str(sweep), "--out", str(tmp_path / "report")]) == 0
    assert "same seed 1: counted once" in caplog.text
    numbers = json.loads((tmp_path / "report" / "report.json").read_text())["adain"]
    assert sorted(numbers) == ["imp, model.optimizer.lr=0.0001", "imp, model.optimizer.lr=0.01"]
    default_lr, high_lr = numbers["imp, model.optimizer.lr=0.0001"], numbers["imp, model.optimizer.lr=0.01"]
    assert default_lr["extreme"]["seeds"] == [0, 1] and high_lr["extreme"]["seeds"] == [0]
    assert default_lr["runs"] == [str(sweep / "a"), str(sweep / "b")]
    across = default_lr["extreme"]["replicates"]
    assert across["replicates"] == 2 and across["dense_E_std"] == pytest.approx(statistics.stdev([dense, dense * 1.04]))
    sparsity = summary(runs["imp"])["rounds"][1]["sparsity"]
    assert across["extreme_sparsity"] == pytest.approx(sparsity) and across["all_lower_matched"]
    assert [p["matching"] for p in default_lr["rounds"]] == [2, 1]  # per seed, the strict rule: seed 0 fails
    assert high_lr["extreme"]["replicates"]["extreme_sparsity"] == 0.0
