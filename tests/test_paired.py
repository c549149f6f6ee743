"""The paired verdict across replicates, on hand-made per-pair numbers with known answers."""

from __future__ import annotations

import json
import math
import shutil
import statistics
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf
from scipy.stats import t

from lottery_style.cli import main
from lottery_style.engine.lottery import LotteryRun
from lottery_style.tickets.paired import paired_verdict
from lottery_style.tickets.paths import round_dir
from lottery_style.tickets.verdict import matching_verdict, paired_difference
from tests.conftest import TINY, compose_train

PAIRS = 6
DENSE = [32.0, 40.0, 24.0, 36.0, 28.0, 44.0]  # one seed's dense per-pair E: mean 34


def test_a_ticket_one_percent_better_on_every_pair_matches() -> None:
    dense = [[value + seed for value in DENSE] for seed in range(3)]
    ticket = [[0.99 * value for value in row] for row in dense]
    verdict = paired_verdict(ticket, dense, margin=0.02)
    assert (verdict.seeds, verdict.pairs, verdict.margin) == (3, PAIRS, 0.02)
    assert verdict.mean == pytest.approx(-0.01, abs=1e-12)  # the mean relative gap is exactly the ticket's 1%
    assert verdict.low < -0.01 < verdict.high <= 0.0  # the spread is the pairs' (E differs by pair), small
    assert verdict.non_inferior


def test_a_ticket_equal_on_average_but_ten_percent_worse_on_half_the_seeds_does_not_match() -> None:
    """Seeds 0 and 1: 10% worse on every pair, seeds 2 and 3: 10% better. The mean gap is 0, and the interval is the
    t interval over the four seeds' gaps (+-10%): 0 +- t(0.975, 3) x 0.1155 / 2 = +-18.4%, far above a 2% margin."""
    dense = [DENSE] * 4
    ticket = [[factor * value for value in DENSE] for factor in (1.1, 1.1, 0.9, 0.9)]
    verdict = paired_verdict(ticket, dense, margin=0.02)
    half = t.ppf(0.975, 3) * statistics.stdev([0.1, 0.1, -0.1, -0.1]) / 2
    assert verdict.mean == pytest.approx(0.0, abs=1e-12) and verdict.df == pytest.approx(3)
    assert (verdict.low, verdict.high) == (pytest.approx(-half), pytest.approx(half)) and half == pytest.approx(0.1838, abs=1e-4)
    assert not verdict.non_inferior
    assert paired_verdict(ticket, dense, margin=0.2).non_inferior  # a margin above the interval's end accepts it


def test_seed_and_pair_effects_both_widen_the_interval_as_the_crossed_layout_says() -> None:
    """r[s, p] = a_s + b_p (no interaction): the variance of the mean is var(a)/S + var(b)/P, with Satterthwaite's
    degrees of freedom between S - 1 and P - 1."""
    seed_effect, pair_effect = np.array([0.01, -0.02, 0.03]), np.array([0.02, -0.01, 0.0, 0.04, -0.03, 0.01])
    dense = [DENSE] * 3
    mean_dense = statistics.fmean(DENSE)
    ticket = [[d + mean_dense * (a + b) for d, b in zip(DENSE, pair_effect)] for a in seed_effect]
    verdict = paired_verdict(ticket, dense)
    seed_part, pair_part = seed_effect.var(ddof=1) / 3, pair_effect.var(ddof=1) / PAIRS
    df = (seed_part + pair_part) ** 2 / (seed_part**2 / 2 + pair_part**2 / (PAIRS - 1))
    half = t.ppf(0.975, df) * math.sqrt(seed_part + pair_part)
    mean = seed_effect.mean() + pair_effect.mean()
    assert verdict.mean == pytest.approx(mean) and verdict.df == pytest.approx(df)
    assert (verdict.low, verdict.high) == (pytest.approx(mean - half), pytest.approx(mean + half))


def test_one_seed_is_the_paired_t_interval_over_pairs_relative_to_the_dense_mean() -> None:
    ticket = [[value + offset for value, offset in zip(DENSE, (1.0, -0.5, 0.25, 2.0, 0.0, -1.0))]]
    verdict = paired_verdict(ticket, [DENSE])
    mean, low, high = paired_difference(ticket[0], DENSE)
    scale = statistics.fmean(DENSE)
    assert (verdict.mean, verdict.low, verdict.high) == (pytest.approx(mean / scale), pytest.approx(low / scale), pytest.approx(high / scale))


def test_seeds_judged_on_different_pairs_are_refused() -> None:
    with pytest.raises(ValueError, match="same, non-empty pairs"):
        paired_verdict([DENSE, DENSE[:5]], [DENSE, DENSE])


# ------------------------------------------------------------- in the report
@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("template")
    LotteryRun(compose_train([*TINY, "pruning.rounds=1", "training.steps=2"], output_dir=out), out).run()
    return out


def hand_made_run(template: Path, out: Path, seed: int, per_pair: list[list[float]]) -> Path:
    """``template``'s config with ``seed``, and rounds (round 0 dense, 20% pruned per round) whose per-pair E are
    ``per_pair``, with the summary the run would have written."""
    shutil.copytree(round_dir(template, 0), round_dir(out, 0), ignore=shutil.ignore_patterns("ticket.*", "logs"))
    cfg = OmegaConf.load(round_dir(out, 0) / "config.yaml")
    cfg.seed = seed
    template_row = json.loads((template / "summary.json").read_text())["rounds"][0]
    rows = []
    for index, values in enumerate(per_pair):
        folder = round_dir(out, index)
        folder.mkdir(exist_ok=True)
        (folder / "config.yaml").write_text(OmegaConf.to_yaml(cfg))
        row = {**template_row, "round": index, "sparsity": 1 - 0.8**index, "E": statistics.fmean(values)}
        (folder / "metrics.json").write_text(json.dumps({**row, "per_pair_E": values}))
        (folder / "DONE").write_text("")
        rows.append(row)
    verdict = matching_verdict(rows)
    rows = [{**row, "matching": match} for row, match in zip(rows, verdict.matching)]
    (out / "summary.json").write_text(json.dumps({"rounds": rows, "verdict": asdict(verdict)}))
    return out


def test_the_report_shows_the_three_verdicts_side_by_side_where_every_seed_reached(template, tmp_path) -> None:
    """Four seeds with the same dense errors: at 20% every ticket is 1% better (all three rules match); at 36% seeds
    0-1 are 12.5% worse and seeds 2-3 12.5% better (the means equal dense: the paper's and Chen et al.'s rules match,
    the paired verdict does not); only seed 3 reached 48.8%, far better: not judged by any rule."""
    sweep = tmp_path / "sweep"
    for seed, factor in enumerate((1.125, 1.125, 0.875, 0.875)):
        rounds = [DENSE, [0.99 * v for v in DENSE], [factor * v for v in DENSE]] + ([[0.5 * v for v in DENSE]] if seed == 3 else [])
        hand_made_run(template, sweep / str(seed), seed, rounds)
    assert main(["report", str(sweep), "--out", str(tmp_path / "report"), "--margin", "0.03"]) == 0
    paired = json.loads((tmp_path / "report" / "report.json").read_text())["adain"]["imp"]["paired"]
    assert paired["margin"] == 0.03 and paired["confidence"] == 0.95
    assert [row["sparsity"] for row in paired["rounds"]] == [pytest.approx(0.2), pytest.approx(0.36)]
    assert [(row["seeds"], row["paired"]["seeds"], row["paired"]["pairs"]) for row in paired["rounds"]] == [(4, 4, PAIRS)] * 2
    assert [(row["paper_mean"], row["chen"], row["paired"]["non_inferior"]) for row in paired["rounds"]] == [
        (True, True, True), (True, True, False)
    ]
    assert paired["rounds"][1]["paired"]["mean"] == pytest.approx(0.0, abs=1e-12)
    assert paired["extreme_sparsity"] == {"paper_mean": pytest.approx(0.36), "chen": pytest.approx(0.36), "paired": pytest.approx(0.2)}
    page = (tmp_path / "report" / "report.html").read_text()
    assert "<td>36.00%</td><td>4</td><td>6</td><td>yes</td><td>yes</td><td>+0.00% [" in page
    assert "<td>extreme sparsity</td><td></td><td></td><td>36.00%</td><td>36.00%</td><td></td><td>20.00%</td>" in page
    assert "non-inferior at 3%" in page


def test_a_margin_outside_zero_to_one_is_one_line(template, capsys) -> None:
    assert main(["report", str(template), "--out", "unused", "--margin", "2"]) == 2
    assert "--margin 2.0 is invalid: expected a relative margin in [0, 1)" in capsys.readouterr().err
    assert not Path("unused").exists()
