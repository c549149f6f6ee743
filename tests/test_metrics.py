"""A metric is declared once (``core.metrics``): the summary, the terminal table and the report take their columns
from the declarations, and a value no declaration names is refused rather than dropped."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch

from lottery_style.core.metrics import METRICS, Metric
from lottery_style.engine.evaluation import evaluate
from lottery_style.tickets.paths import round_dir
from lottery_style.tickets.storage import mark_complete
from lottery_style.tickets.verdict import format_table, matching_verdict, summary_fields, table_metrics, write_summary
from lottery_style.tools.report import Run, aggregate, round_header
from lottery_style.tools.report import _round_rows as round_rows
from tests.conftest import tiny_model

ROOT = Path(__file__).resolve().parent.parent
ROUNDS = [  # two rounds of a run, as metrics.json records them
    {"round": 0, "method": "imp", "sparsity": 0.0, "E": 10.0, "E_content": 4.0, "E_style": 6.0, "structure": 0.5,
     "sharpness": 1.25, "per_pair_E": [9.0, 11.0]},
    {"round": 1, "method": "imp", "sparsity": 0.2, "E": 9.0, "E_content": 4.0, "E_style": 5.0, "structure": 0.25,
     "sharpness": 2.5, "per_pair_E": [8.0, 10.0]},
]  # fmt: skip


@pytest.fixture
def sharpness(monkeypatch: pytest.MonkeyPatch) -> Metric:
    """A metric declared for one test (an extension's, as far as the package knows)."""
    metric = Metric("sharpness", "sharp", ".2f", lower_is_better=False, help="edge energy of the output", width=7)
    monkeypatch.setitem(METRICS, metric.name, metric)
    return metric


def run_folder(path: Path) -> Path:
    for row in ROUNDS:
        folder = round_dir(path, row["round"])
        folder.mkdir(parents=True)
        (folder / "metrics.json").write_text(json.dumps(row))
        mark_complete(folder)
    return path


def test_a_declared_metric_is_a_column_of_the_summary_and_of_the_table(sharpness: Metric, tmp_path: Path) -> None:
    rows, verdict = write_summary(run_folder(tmp_path), tolerance=0.0)
    header = next(csv.reader((tmp_path / "summary.csv").open()))
    assert header.index("sharpness") == header.index("structure") + 1 and header[-4] == "matching"
    assert [row["sharpness"] for row in json.loads((tmp_path / "summary.json").read_text())["rounds"]] == [1.25, 2.5]
    lines = format_table(rows, verdict).splitlines()
    assert lines[0].split()[:7] == ["round", "sparsity", "E", "E_content", "E_style", "structure", "sharp"]
    assert "      0.500     1.25  " in lines[1] and "      0.250     2.50  " in lines[2]  # width 7, ".2f"
    assert "sharp: edge energy of the output" in lines[-1]


def test_an_undeclared_value_is_in_no_output(tmp_path: Path) -> None:
    """The same records without the declaration: no summary column, no table column (the test above can fail)."""
    rows, verdict = write_summary(run_folder(tmp_path), tolerance=0.0)
    assert "sharpness" not in summary_fields() and "sharpness" not in rows[0]
    assert "sharp" not in format_table(rows, verdict)


def test_the_report_averages_a_declared_metric_and_shows_its_direction(sharpness: Metric) -> None:
    runs = [Run(path=Path(f"run{seed}"), model="adain", method="imp", seed=seed, identity={},
                rows=[{**row, "sharpness": row["sharpness"] + seed, "matching": True} for row in ROUNDS])
            for seed in (0, 1)]  # fmt: skip
    points = aggregate(runs)
    assert [p["sharpness_mean"] for p in points] == [pytest.approx(1.75), pytest.approx(3.0)]
    metrics = table_metrics([row for run in runs for row in run.rows])
    assert metrics[-1] is sharpness and "sharp ↑" in round_header(metrics) and "E ↓" in round_header(metrics)
    assert round_rows(runs, metrics)[1][2 + metrics.index(sharpness)] == "3.00 ± 0.71"


def test_a_metric_with_compute_is_recorded_for_every_model(monkeypatch: pytest.MonkeyPatch, pair) -> None:
    metric = Metric("mean_output", "mean out", ".3f", lower_is_better=False, help="mean of the output",
                    compute=lambda content, style, stylized: stylized.mean(dim=(1, 2, 3)))  # fmt: skip
    monkeypatch.setitem(METRICS, metric.name, metric)
    model = tiny_model("adain").eval()
    content, style = pair
    errors = model.test_errors(content, style)
    torch.testing.assert_close(errors["mean_output"], model.stylize(content, style).mean(dim=(1, 2, 3)))
    assert set(errors) <= set(METRICS)


class Undeclared(torch.nn.Module):
    """A model whose test_errors returns a value no metric declares."""

    def test_errors(self, content: torch.Tensor, style: torch.Tensor) -> dict[str, torch.Tensor]:
        ones = torch.ones(content.shape[0])
        return {"E": ones, "E_content": ones, "E_style": 0 * ones, "mystery": ones}


def test_evaluation_refuses_a_value_no_metric_declares() -> None:
    batch = {"content": torch.zeros(2, 3, 8, 8), "style": torch.zeros(2, 3, 8, 8)}
    with pytest.raises(ValueError, match=r"returned \['mystery'\], which no core.metrics.register_metric declares"):
        evaluate(Undeclared(), [batch], torch.device("cpu"))  # type: ignore[arg-type]


def test_the_packages_table_is_the_one_the_docs_print() -> None:
    """The columns built from the declarations are today's: the header the getting-started page shows."""
    page = (ROOT / "docs/getting-started.md").read_text().splitlines()
    printed = next(line for line in page if line.split()[:2] == ["round", "sparsity"])
    rows = [{key: value for key, value in row.items() if key != "sharpness"} for row in ROUNDS]
    assert format_table(rows, matching_verdict(rows)).splitlines()[0] == printed
