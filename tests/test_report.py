"""`lottery-style report` on two tiny runs (IMP and random_prune) and on replicas of them (other seeds, other configs)."""

from __future__ import annotations

import json
import re
import shutil
import statistics
from dataclasses import asdict
from pathlib import Path

import pytest
from omegaconf import OmegaConf
from PIL import Image

from lottery_style.cli import main
from lottery_style.engine.lottery import LotteryRun
from lottery_style.tickets.paths import METRICS_FILE, round_dir
from lottery_style.tickets.verdict import matching_verdict
from lottery_style.tools.report import error_figure, group_runs, load_run, load_runs
from lottery_style.tools.report_cost import RECORDED, cost_figure
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
    for name in ("E_vs_sparsity-adain.png", "terms_vs_sparsity-adain.png", "quality_vs_flops-adain.png"):
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
        assert cells[1] == f"{100 * verdict['highest_matching_sparsity']:.2f}% ± 0.00%"
        assert cells[3:] == [f"{100 * verdict[key]:.2f}%" for key in ("extreme_sparsity", "highest_matching_sparsity")] + ["-"]
        rows = summary(run)["rounds"]
        assert [p["E_mean"] for p in numbers[method]["rounds"]] == [r["E"] for r in rows]
    # weight tickets keep every dense kernel: each point of both series at the dense FLOPs, the rows' own count
    for method, run in runs.items():
        cost = numbers[method]["quality_vs_cost"]
        assert cost["figure"] == "quality_vs_flops-adain.png" and cost["metrics"] == ["E", "structure"]
        recorded = json.loads((round_dir(run, 1) / METRICS_FILE).read_text())
        assert recorded["flops_kept"] == recorded["flops"] > 0
        assert cost["points"]["gflops_kept_mean"] == [recorded["flops"] / 1e9] * 2 == cost["dense"]["gflops_kept_mean"] * 2
        assert cost["points"]["flops_ratio_mean"] == [1.0, 1.0]
        assert cost["legend"] == f"{method}, weight (n=1)"
    # self-contained: the four figures and the grids (dense + one per method) are embedded
    assert page.count('src="data:image/png;base64,') == 4 + 1 + len(runs)  # E, terms, structure, cost; grids
    assert "src=\"http" not in page and "src='" not in page


def replica(run: Path, out: Path, seed: int, E_round1: float, **changes: object) -> Path:
    """A copy of ``run``'s records (no weights) as if trained with another seed (and other config ``changes``),
    its round 1 scoring ``E_round1``."""
    shutil.copytree(run, out, ignore=shutil.ignore_patterns("*.pt", "logs"))
    for config in out.glob("round_*/config.yaml"):
        cfg = OmegaConf.load(config)
        cfg.seed = seed
        for key, value in changes.items():
            OmegaConf.update(cfg, key.replace("__", "."), value)
        config.write_text(OmegaConf.to_yaml(cfg))
    data = summary(out)
    data["rounds"][1]["E"] = E_round1
    return write_rounds(out, data["rounds"])


def write_rounds(out: Path, rows: list[dict]) -> Path:
    """``rows`` as ``out``'s summary.json, with the verdict the run would have recorded for them."""
    verdict = matching_verdict(rows)
    rows = [{**row, "matching": match} for row, match in zip(rows, verdict.matching)]
    (out / "summary.json").write_text(json.dumps({"rounds": rows, "verdict": asdict(verdict)}))
    return out


def test_seeds_of_a_method_are_aggregated(runs, tmp_path) -> None:
    base = summary(runs["imp"])
    high, dense = base["rounds"][1]["sparsity"], base["rounds"][0]["E"]
    sweep = tmp_path / "sweep"  # a folder of runs, as a multirun leaves them
    replica(runs["imp"], sweep / "0", 0, dense - 1.0)  # matches
    replica(runs["imp"], sweep / "1", 1, dense + 1.0)  # does not
    assert main(["report", str(sweep), "--out", str(tmp_path / "report")]) == 0
    imp = json.loads((tmp_path / "report" / "report.json").read_text())["adain"]["imp"]
    assert imp["extreme"]["seeds"] == [0, 1] and imp["extreme"]["replicates"]["replicates"] == 2
    assert imp["extreme"]["extreme_sparsity"]["mean"] == pytest.approx(high / 2)
    assert imp["extreme"]["extreme_sparsity"]["std"] == pytest.approx(statistics.stdev([high, 0.0]))
    assert imp["rounds"][1]["E_mean"] == pytest.approx(dense) and imp["rounds"][1]["E_std"] == pytest.approx(2**0.5)
    page = (tmp_path / "report" / "report.html").read_text()
    assert extreme_cell(page, "imp")[0] == f"{50 * high:.2f}% ± {100 * statistics.stdev([high, 0.0]):.2f}%"


def test_a_run_without_summary_is_read_from_its_rounds(runs, tmp_path) -> None:
    copy = tmp_path / "unfinished"
    shutil.copytree(runs["imp"], copy, ignore=shutil.ignore_patterns("*.pt", "logs", "summary.*"))
    shutil.rmtree(round_dir(copy, 1))  # round 1 still running
    run = load_run(copy)
    assert run.method == "imp" and run.seed == 0
    expected = summary(runs["imp"])["rounds"][:1]
    assert [{key: row[key] for key in expected[0]} for row in run.rows] == expected  # and beside them, the cost:
    assert run.rows[0]["flops_kept"] == run.rows[0]["flops"] > 0 and run.rows[0]["granularity"] == "weight"


def test_series_are_experiments_and_replicates_are_distinct_seeds(runs, tmp_path, caplog) -> None:
    """Only the seed may differ between replicates: another learning rate is another series, the same seed twice
    is one replicate, and the across-seed verdict allows one std of the dense E over the replicates."""
    dense = summary(runs["imp"])["rounds"][0]["E"]
    sweep = tmp_path / "sweep"
    replica(runs["imp"], sweep / "a", 0, dense * 1.01)
    replica(runs["imp"], sweep / "b", 1, dense * 1.01)
    replica(runs["imp"], sweep / "b_again", 1, dense * 5)  # seed 1 again: not a third replicate
    replica(runs["imp"], sweep / "lr", 0, dense * 5, model__optimizer__lr=0.01)
    # replicate b's dense E is higher, so the dense E has a spread over seeds that covers the tickets' 1% gap
    rows = summary(sweep / "b")["rounds"]
    rows[0]["E"] = dense * 1.04
    write_rounds(sweep / "b", rows)
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
    assert across["extreme_sparsity"] == across["highest_matching_sparsity"] == pytest.approx(sparsity)
    assert [p["matching"] for p in default_lr["rounds"]] == [2, 1]  # per seed, the strict rule: seed 0 fails
    assert high_lr["extreme"]["replicates"]["extreme_sparsity"] == 0.0


def rounds_of(run: Path, errors: list[float]) -> list[dict]:
    """Hand-made rounds at 20% per round with test errors ``errors`` (round 0 dense), on ``run``'s fields."""
    template = summary(run)["rounds"][0]
    return [{**template, "round": r, "sparsity": 1 - 0.8**r, "E": E} for r, E in enumerate(errors)]


def test_replicates_of_unequal_length_are_judged_only_where_every_one_reached(runs, tmp_path) -> None:
    """Three seeds finished up to 36%, a fourth also has a (matching) 48.8% round: 48.8% is shown, marked as not
    judged, and no verdict across the seeds uses it; every verdict says n = 4."""
    sweep = tmp_path / "sweep"
    for seed in range(4):
        replica(runs["imp"], sweep / str(seed), seed, 0.0)
        errors = [10.0 + 0.1 * seed, 9.9, 9.95] + ([9.0] if seed == 3 else [])  # every ticket below its dense E
        write_rounds(sweep / str(seed), rounds_of(runs["imp"], errors))
    assert main(["report", str(sweep), "--out", str(tmp_path / "report")]) == 0
    imp = json.loads((tmp_path / "report" / "report.json").read_text())["adain"]["imp"]
    across = imp["extreme"]["replicates"]
    assert across["replicates"] == 4 and across["extreme_sparsity"] == pytest.approx(0.36)
    assert across["highest_matching_sparsity"] == pytest.approx(0.36) and across["not_judged"] == [pytest.approx(0.488)]
    # per seed too: seed 3's 48.8% is not set against the others' 36%
    assert imp["extreme"]["extreme_sparsity"]["values"] == [pytest.approx(0.36)] * 4
    assert imp["extreme"]["highest_matching_sparsity"]["values"] == [pytest.approx(0.36)] * 4
    assert [(p["seeds"], p["judged"], p["matching_replicates"]) for p in imp["rounds"]] == [
        (4, True, True), (4, True, True), (4, True, True), (1, False, None)
    ]
    page = (tmp_path / "report" / "report.html").read_text()
    assert "<td>48.80%</td><td>9 ± 0</td>" in page and "<td>1/1</td><td>not judged (n=1 of 4)</td>" in page
    assert extreme_cell(page, "imp")[3:] == ["36.00%", "36.00%", "48.80%"]
    assert re.search(r"<tr><td>imp</td><td>4</td><td>0, 1, 2, 3</td>", page)
    labels = [t.get_text() for t in error_figure(group_runs(load_runs([sweep]))["adain"]).axes[0].get_legend().get_texts()]
    assert {"imp (n=4)", "imp: fewer than 4 seeds, not judged", "imp extreme: 36.0% sparse"} <= set(labels)


def test_the_report_and_the_run_summary_read_extreme_sparsity_alike(runs, tmp_path) -> None:
    """20% fails, 36% and 48.8% match: the run's summary, its table and the report all say 0% extreme sparsity
    (no unbroken matching run from the dense model) with 48.8% as the highest matching sparsity."""
    rows = rounds_of(runs["imp"], [10.0, 10.5, 9.5, 9.8])
    replica(runs["imp"], tmp_path / "run", 0, 0.0)
    write_rounds(tmp_path / "run", rows)
    recorded = summary(tmp_path / "run")["verdict"]
    assert recorded["extreme_sparsity"] == 0.0 and recorded["highest_matching_sparsity"] == pytest.approx(0.488)
    assert main(["report", str(tmp_path / "run"), "--out", str(tmp_path / "report")]) == 0
    extreme = json.loads((tmp_path / "report" / "report.json").read_text())["adain"]["imp"]["extreme"]
    assert (extreme["extreme_sparsity"]["values"], extreme["highest_matching_sparsity"]["values"]) == ([0.0], [pytest.approx(0.488)])
    across = extreme["replicates"]
    assert (across["extreme_sparsity"], across["highest_matching_sparsity"]) == (0.0, pytest.approx(0.488))


def record_cost(run: Path, rounds: list[dict], kept: list[float], params: list[int], granularity: str) -> Path:
    """Round r's metrics.json records ``kept[r]`` of 2e9 dense FLOPs and ``params[r]`` nonzero parameters, and
    ``run``'s summary the ``rounds``; a round folder the copied run lacks holds only its metrics.json."""
    for index, (flops_kept, nonzero) in enumerate(zip(kept, params)):
        folder = round_dir(run, index)
        source = folder if folder.is_dir() else round_dir(run, 0)
        metrics = json.loads((source / METRICS_FILE).read_text())
        metrics.update(round=index, granularity=granularity, flops=2e9, flops_kept=flops_kept, params_nonzero=nonzero,
                       params_total=8_000_000, file_bytes=nonzero * 4)  # fmt: skip
        folder.mkdir(exist_ok=True)
        (folder / METRICS_FILE).write_text(json.dumps(metrics))
    return write_rounds(run, rounds)


def test_quality_against_cost_draws_the_means_over_seeds_at_the_sparsities_all_reached(runs, tmp_path) -> None:
    """Two weight seeds keep the dense FLOPs; three channel seeds keep fewer, the third also has a 48.8% round that
    the others lack: the figure's arrays (report.json) are the means and stds over the seeds at 0, 20 and 36%
    only, and the dense model is one point (each seed's dense counted once, however many series start from it)."""
    sweep = tmp_path / "sweep"
    weight_E = {0: [10.0, 9.9, 9.8], 1: [11.0, 10.1, 10.4]}
    for seed, errors in weight_E.items():
        replica(runs["imp"], sweep / f"w{seed}", seed, 0.0)
        rows = [{**row, "structure": 0.9 - 0.1 * r} for r, row in enumerate(rounds_of(runs["imp"], errors))]
        record_cost(sweep / f"w{seed}", rows, [2e9] * 3, [8_000_000, 6_400_000, 5_120_000], "weight")
    channel = {  # seed: E, kept FLOPs, nonzero parameters per round
        0: ([10.0, 10.5, 11.0], [2e9, 1.2e9, 0.7e9], [8_000_000, 5_000_000, 3_000_000]),
        1: ([11.0, 11.5, 12.0], [2e9, 1.0e9, 0.5e9], [8_000_000, 4_000_000, 2_000_000]),
        2: ([12.0, 11.0, 11.5, 13.0], [2e9, 1.1e9, 0.6e9, 0.3e9], [8_000_000, 4_500_000, 2_500_000, 1_000_000]),
    }
    for seed, (errors, kept, params) in channel.items():
        replica(runs["imp"], sweep / f"c{seed}", seed, 0.0, pruning__granularity="channel")
        rows = [{**row, "structure": 0.9 - 0.2 * r} for r, row in enumerate(rounds_of(runs["imp"], errors))]
        record_cost(sweep / f"c{seed}", rows, kept, params, "channel")
    assert main(["report", str(sweep), "--out", str(tmp_path / "report")]) == 0
    numbers = json.loads((tmp_path / "report" / "report.json").read_text())["adain"]
    weight, slim = (numbers[f"imp, pruning.granularity={g}"]["quality_vs_cost"] for g in ("weight", "channel"))
    assert weight["figure"] == slim["figure"] == "quality_vs_flops-adain.png"
    assert weight["metrics"] == slim["metrics"] == ["E", "structure"]
    assert weight["legend"] == "imp, pruning.granularity=weight (n=2)"
    assert slim["legend"] == "imp, pruning.granularity=channel (n=3)"
    assert weight["dense"] == slim["dense"]
    dense = weight["dense"]  # seeds 0, 1, 2: dense E 10, 11, 12 (seeds 0 and 1 are in both series)
    assert dense["gflops_kept_mean"] == [2.0] and dense["flops_ratio_mean"] == [1.0]
    assert dense["E_mean"] == pytest.approx([11.0]) and dense["E_std"] == pytest.approx([1.0])
    weight, slim = weight["points"], slim["points"]
    assert weight["sparsity"] == pytest.approx([0.0, 0.2, 0.36])
    assert weight["gflops_kept_mean"] == [2.0] * 3 and weight["gflops_kept_std"] == [0.0] * 3
    assert weight["flops_ratio_mean"] == [1.0] * 3
    assert weight["E_mean"] == pytest.approx([10.5, 10.0, 10.1])
    assert weight["E_std"] == pytest.approx([statistics.stdev(pair) for pair in zip(*weight_E.values())])
    assert weight["structure_mean"] == pytest.approx([0.9, 0.8, 0.7]) and weight["structure_std"] == pytest.approx([0.0] * 3)
    assert slim["sparsity"] == pytest.approx([0.0, 0.2, 0.36])  # seed 2's 48.8% is not drawn
    assert slim["gflops_kept_mean"] == pytest.approx([2.0, 1.1, 0.6]) and slim["gflops_kept_std"] == pytest.approx([0.0, 0.1, 0.1])
    assert slim["flops_ratio_mean"] == pytest.approx([1.0, 0.55, 0.3])
    assert slim["E_mean"] == pytest.approx([11.0, 11.0, 11.5]) and slim["E_std"] == pytest.approx([1.0, 0.5, 0.5])
    assert slim["structure_mean"] == pytest.approx([0.9, 0.7, 0.5])
    # every row lists its kept FLOPs, their ratio to dense and the parameters kept, the 48.8% one too
    rounds = numbers["imp, pruning.granularity=channel"]["rounds"]
    assert [p["flops_kept_mean"] for p in rounds] == pytest.approx([2e9, 1.1e9, 0.6e9, 0.3e9])
    assert [p["params_nonzero_mean"] for p in rounds] == pytest.approx([8e6, 4.5e6, 2.5e6, 1e6])
    page = (tmp_path / "report" / "report.html").read_text()
    assert "<td>1.1 ± 0.1</td><td>55.0%</td><td>4,500,000 ± 500,000</td>" in page
    assert "<td>0.3 ± 0</td><td>15.0%</td><td>1,000,000 ± 0</td>" in page
    assert "<figcaption>quality_vs_flops-adain.png</figcaption>" in page
    with Image.open(tmp_path / "report" / "quality_vs_flops-adain.png") as figure:
        assert figure.format == "PNG" and figure.width > 600


def test_the_cost_figure_draws_its_arrays_on_a_log_axis_cheaper_to_the_right() -> None:
    def arrays(gflops: list[float], E: list[float]) -> dict[str, list[float]]:
        zeros = [0.0] * len(E)
        sparsity = [1 - 0.8**r for r in range(len(E))]
        return {"sparsity": sparsity, "gflops_kept_mean": gflops, "gflops_kept_std": zeros, "E_mean": E, "E_std": zeros}

    series = {"imp, weight (n=2)": arrays([2.0, 2.0], [10.0, 9.0]), "imp, channel (n=2)": arrays([2.0, 0.5], [10.0, 12.0])}
    axis = cost_figure(series, arrays([2.0], [10.0])).axes[0]
    drawn = {c.get_label(): (list(c.lines[0].get_xdata()), list(c.lines[0].get_ydata())) for c in axis.containers}
    assert drawn == {"imp, weight (n=2)": ([2.0, 2.0], [10.0, 9.0]), "imp, channel (n=2)": ([2.0, 0.5], [10.0, 12.0]),
                     "dense (round 0)": ([2.0], [10.0])}  # fmt: skip
    assert axis.get_xscale() == "log" and axis.get_xlim()[0] > axis.get_xlim()[1]
    assert list(axis.get_xticks()) == [2.0, 0.5] and "GFLOPs kept" in axis.get_xlabel()
    assert [(t.get_text(), t.xy) for t in axis.texts] == [("20.0%", (2.0, 9.0)), ("20.0%", (0.5, 12.0))]


def test_a_run_recorded_before_the_cost_fields_reports_without_the_cost_figure_and_says_why(runs, tmp_path) -> None:
    old = tmp_path / "old"
    replica(runs["imp"], old, 0, summary(runs["imp"])["rounds"][1]["E"])
    for folder in old.glob("round_*"):
        metrics = json.loads((folder / METRICS_FILE).read_text())
        (folder / METRICS_FILE).write_text(json.dumps({k: v for k, v in metrics.items() if k not in RECORDED}))
    assert main(["report", str(old), "--out", str(tmp_path / "report")]) == 0
    numbers = json.loads((tmp_path / "report" / "report.json").read_text())["adain"]
    assert numbers["imp"]["quality_vs_cost"]["figure"] is None
    why_not = numbers["imp"]["quality_vs_cost"]["why_not"]
    assert why_not == (f"No quality-vs-cost figure: 1 of 1 runs have rounds without recorded FLOPs (metrics.json older "
                       f"than the cost fields, or round folders gone), e.g. {old}")  # fmt: skip
    assert not (tmp_path / "report" / "quality_vs_flops-adain.png").exists()
    assert all("flops_kept_mean" not in p for p in numbers["imp"]["rounds"])
    page = (tmp_path / "report" / "report.html").read_text()
    assert f"<p>{why_not}</p>" in page and "<td>-</td><td>-</td><td>-</td></tr>" in page
