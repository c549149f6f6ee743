"""The matching verdict and extreme sparsity, computed from recorded metrics only."""

from __future__ import annotations

import json
import statistics

import pytest

from lottery_style.tickets.paths import round_dir
from lottery_style.tickets.storage import mark_complete
from lottery_style.tickets.verdict import format_table, matching_verdict, paired_difference, verdict_line, write_summary

ROWS = [
    {"round": 0, "sparsity": 0.0, "E": 10.0, "E_std": 1.5, "E_content": 4.0, "E_style": 6.0},
    {"round": 1, "sparsity": 0.2, "E": 9.0, "E_std": 1.0, "E_content": 4.0, "E_style": 5.0},
    {"round": 2, "sparsity": 0.36, "E": 10.4, "E_std": 1.0, "E_content": 4.0, "E_style": 6.4},
    {"round": 3, "sparsity": 0.488, "E": 10.0, "E_std": 1.0, "E_content": 4.0, "E_style": 6.0},
    {"round": 4, "sparsity": 0.59, "E": 11.2, "E_std": 1.0, "E_content": 5.0, "E_style": 6.2},
    {"round": 5, "sparsity": 0.672, "E": 12.0, "E_std": 1.0, "E_content": 5.0, "E_style": 7.0},
]


def test_strict_verdict_is_e_no_greater_than_dense() -> None:
    verdict = matching_verdict(ROWS)
    assert verdict.matching == [True, True, False, True, False, False]


def test_relative_tolerance_relaxes_the_verdict() -> None:
    verdict = matching_verdict(ROWS, tolerance=0.05)
    assert verdict.matching == [True, True, True, True, False, False]
    assert verdict.extreme_sparsity == pytest.approx(0.488)
    assert matching_verdict(ROWS, tolerance=0.15).extreme_sparsity == pytest.approx(0.59)


def test_extreme_sparsity_ends_the_unbroken_matching_run_and_the_highest_match_stands_beside_it() -> None:
    verdict = matching_verdict(ROWS)  # 20% matches, 36% fails, 48.8% matches again
    assert verdict.extreme_sparsity == pytest.approx(0.2)
    assert verdict.highest_matching_sparsity == pytest.approx(0.488)
    relaxed = matching_verdict(ROWS, tolerance=0.05)  # 36% matches too: one unbroken run to 48.8%
    assert relaxed.extreme_sparsity == relaxed.highest_matching_sparsity == pytest.approx(0.488)
    first_fails = [ROWS[0], {**ROWS[1], "E": 10.5}, ROWS[2], ROWS[3]]  # 20% and 36% fail, 48.8% matches
    verdict = matching_verdict(first_fails)
    assert (verdict.extreme_sparsity, verdict.highest_matching_sparsity) == (0.0, pytest.approx(0.488))
    assert verdict_line(verdict) == (
        "extreme sparsity: 0.0% (every sparsity up to it matches: E <= dense x 1); "
        "highest matching sparsity: 48.8% (a lower sparsity does not match)"
    )
    assert verdict_line(relaxed) == "extreme sparsity: 48.8% (every sparsity up to it matches: E <= dense x 1.05)"


def test_no_noise_verdict_from_the_spread_of_per_pair_errors() -> None:
    """12% worse than dense with a wide per-pair spread is not matching: the spread is not an uncertainty."""
    rows = [ROWS[0], {**ROWS[1], "E": 11.2, "E_std": 3.0}]
    verdict = matching_verdict(rows)
    assert verdict.matching == [True, False] and verdict.extreme_sparsity == 0.0
    assert not hasattr(verdict, "matching_std") and not hasattr(verdict, "extreme_sparsity_std")


def test_paired_difference_is_a_t_interval_on_the_same_pairs() -> None:
    dense = [1.0, 2.0, 3.0, 4.0]
    ticket = [1.5, 2.1, 3.8, 4.2]  # differences 0.5, 0.1, 0.8, 0.2: mean 0.4, sd 0.316..., t(0.975, 3) = 3.1824
    mean, low, high = paired_difference(ticket, dense)
    half = 3.182446305 * statistics.stdev([0.5, 0.1, 0.8, 0.2]) / 2
    assert mean == pytest.approx(0.4)
    assert (low, high) == (pytest.approx(0.4 - half), pytest.approx(0.4 + half))
    assert paired_difference([2.0], [1.0]) == (1.0, None, None)
    with pytest.raises(ValueError, match="same pairs"):
        paired_difference([1.0, 2.0], [1.0])


def test_no_matching_ticket_gives_zero_extreme_sparsity() -> None:
    rows = [ROWS[0], {**ROWS[1], "E": 99.0}]
    assert matching_verdict(rows).extreme_sparsity == 0.0


def test_verdict_needs_the_dense_round() -> None:
    with pytest.raises(ValueError, match="dense round 0"):
        matching_verdict(ROWS[1:])


def test_summary_files_and_table_from_ticket_folders(tmp_path) -> None:
    for row in ROWS:
        folder = round_dir(tmp_path, row["round"])
        folder.mkdir()
        per_pair = [row["E"] - 1.0, row["E"] + 1.0]  # dense: 9, 11; round 1: 8, 10 -> dE -1 on both pairs
        (folder / "metrics.json").write_text(json.dumps({**row, "method": "imp", "ssim": 0.5, "per_pair_E": per_pair}))
        if row["round"] != 5:  # an unfinished round is not part of the summary
            mark_complete(folder)
    rows, verdict = write_summary(tmp_path, tolerance=0.0)
    assert [r["round"] for r in rows] == [0, 1, 2, 3, 4]
    saved = json.loads((tmp_path / "summary.json").read_text())
    assert saved["verdict"]["extreme_sparsity"] == pytest.approx(0.2)
    assert saved["verdict"]["highest_matching_sparsity"] == pytest.approx(0.488)
    assert (tmp_path / "summary.csv").read_text().splitlines()[0].startswith("round,method,sparsity")
    assert rows[1]["dE_mean"] == pytest.approx(-1.0)
    assert (rows[1]["dE_ci_low"], rows[1]["dE_ci_high"]) == (pytest.approx(-1.0), pytest.approx(-1.0))
    table = format_table(rows, verdict)
    assert verdict_line(verdict) in table.splitlines()
    assert "extreme sparsity: 20.0%" in table and "highest matching sparsity: 48.8%" in table
    assert table.splitlines()[3].split()[-1] == "no"
    assert "-1 [-1, -1]" in table.splitlines()[2]
