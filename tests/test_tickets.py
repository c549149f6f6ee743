"""The matching verdict and extreme sparsity, computed from recorded metrics only."""

from __future__ import annotations

import json

import pytest

from lottery_style.tickets import format_table, mark_complete, matching_verdict, round_dir, write_summary

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
    assert verdict.extreme_sparsity == pytest.approx(0.488)


def test_relative_tolerance_relaxes_the_verdict() -> None:
    verdict = matching_verdict(ROWS, tolerance=0.05)
    assert verdict.matching == [True, True, True, True, False, False]
    assert verdict.extreme_sparsity == pytest.approx(0.488)
    assert matching_verdict(ROWS, tolerance=0.15).extreme_sparsity == pytest.approx(0.59)


def test_one_standard_deviation_criterion() -> None:
    verdict = matching_verdict(ROWS)
    # dense E 10 + dense per-pair std 1.5 = 11.5
    assert verdict.matching_std == [True, True, True, True, True, False]
    assert verdict.extreme_sparsity_std == pytest.approx(0.59)


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
        (folder / "metrics.json").write_text(json.dumps({**row, "method": "imp", "ssim": 0.5}))
        if row["round"] != 5:  # an unfinished round is not part of the summary
            mark_complete(folder)
    rows, verdict = write_summary(tmp_path, tolerance=0.0)
    assert [r["round"] for r in rows] == [0, 1, 2, 3, 4]
    saved = json.loads((tmp_path / "summary.json").read_text())
    assert saved["verdict"]["extreme_sparsity"] == pytest.approx(0.488)
    assert (tmp_path / "summary.csv").read_text().splitlines()[0].startswith("round,method,sparsity")
    table = format_table(rows, verdict)
    assert "extreme sparsity: 48.8%" in table
    assert table.splitlines()[3].split()[-1] == "no"
