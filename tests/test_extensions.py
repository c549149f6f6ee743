"""Extending from outside the package: a model, a pruning method (with its own options) and metrics, registered
by a module the package has never seen, run at test size and found in the run's summary and in the report.

The module is written into ``tmp_path`` with the two group files that select its model and method, and used as a
user would: ``extensions=[my_extension]`` with the module on the Python path and ``hydra.searchpath`` naming the
config folder (docs/extending.md). Subprocesses, so that nothing registered here leaks into other tests.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import TINY

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent

EXTENSION = '''
"""A user's extension: the files a recipe of docs/extending.md writes, here in one module."""

from dataclasses import dataclass

from lottery_style.core.config import ModelConfig, Range, option
from lottery_style.core.metrics import Metric, register_metric
from lottery_style.engine.methods import MethodStrategy, register_method
from lottery_style.models import register_model
from lottery_style.models.adain import AdaIN, AdaINLossWeights
from lottery_style.pruning.masks import magnitude_prune

# a metric of every model: computed from the stylized batch
register_metric(Metric("brightness", "brightness", ".4f", lower_is_better=False, help="mean output intensity",
                       compute=lambda content, style, stylized: stylized.clamp(0, 1).mean(dim=(1, 2, 3))))
# a metric only its model records (own_metrics below)
register_metric(Metric("content_gap", "content gap", ".4f", lower_is_better=True, help="mean |output - content|"))


@dataclass
class PlainConfig(ModelConfig):
    loss_weights: AdaINLossWeights = option(factory=AdaINLossWeights, help="weight of each loss term")


@register_model("plain_adain", PlainConfig)
class PlainAdaIN(AdaIN):
    def own_metrics(self, content, style, stylized):
        return {"content_gap": (stylized.clamp(0, 1) - content).abs().mean(dim=(1, 2, 3))}


@dataclass
class AtInitOptions:
    """pruning=magnitude_at_init: the rewind point's magnitudes, one shot per round."""

    note: int = option(0, help="an option of this method alone, recorded with the run", valid=Range(low=0))


@register_method("magnitude_at_init", options=AtInitOptions)
class MagnitudeAtInit(MethodStrategy):
    def next_masks(self, inputs):
        scope = inputs.scope_of(inputs.rewind_point)
        return magnitude_prune(scope, inputs.previous_masks, inputs.target, inputs.layerwise, tie_seed=inputs.tie_seed)
'''

GROUP_FILES = {
    "model/plain_adain.yaml": "defaults:\n  - /plain_adain_schema@_here_\n  - _self_\n",
    "pruning/magnitude_at_init.yaml": "method: magnitude_at_init\n",
}


def lottery_style(arguments: list[str], extension_dir: Path, cwd: Path) -> subprocess.CompletedProcess:
    """``lottery-style ...`` with the extension's folder on the Python path, as a user's shell would have it."""
    path = os.pathsep.join([str(extension_dir), str(ROOT), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "PYTHONPATH": path, "CI": "true"}
    command = [sys.executable, "-m", "lottery_style", *arguments]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, check=False, timeout=900,
                          stdin=subprocess.DEVNULL)  # fmt: skip


@pytest.fixture(scope="module")
def extended_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess, Path]:
    """A tiny run of the outside model under the outside method, then the report over it."""
    tmp = tmp_path_factory.mktemp("extension")
    (tmp / "ext").mkdir()
    (tmp / "ext" / "my_extension.py").write_text(EXTENSION)
    for name, text in GROUP_FILES.items():
        (tmp / "conf" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp / "conf" / name).write_text(text)
    run_dir = tmp / "run"
    arguments = ["extensions=[my_extension]", f"hydra.searchpath=[file://{tmp / 'conf'}]", "model=plain_adain",
                 "pruning=magnitude_at_init", "pruning.magnitude_at_init.note=3", *TINY, "pruning.rounds=1",
                 f"hydra.run.dir={run_dir}"]  # fmt: skip
    trained = lottery_style(arguments, tmp / "ext", tmp)
    assert trained.returncode == 0, trained.stderr[-3000:]
    reported = lottery_style(["report", str(run_dir), "--out", str(tmp / "report")], tmp / "ext", tmp)
    assert reported.returncode == 0, reported.stderr[-3000:]
    return run_dir, trained, tmp / "report"


def test_the_outside_model_method_and_metrics_are_in_the_runs_summary(extended_run) -> None:
    run_dir, trained, _ = extended_run
    summary = json.loads((run_dir / "summary.json").read_text())
    assert [row["method"] for row in summary["rounds"]] == ["magnitude_at_init", "magnitude_at_init"]
    for row in summary["rounds"]:
        assert 0.0 <= row["brightness"] <= 1.0 and 0.0 <= row["content_gap"] <= 1.0
    assert summary["rounds"][1]["sparsity"] == pytest.approx(0.2, abs=1e-3)  # the method pruned round 1
    (header,) = [line for line in trained.stdout.splitlines() if line.split()[:2] == ["round", "sparsity"]]
    assert "brightness" in header and "content gap" in header  # the terminal table's columns
    assert "brightness,content_gap" in (run_dir / "summary.csv").read_text().splitlines()[0]
    metrics = json.loads((run_dir / "round_01" / "metrics.json").read_text())
    assert {"brightness", "content_gap"} <= set(metrics)


def test_the_methods_own_option_and_the_extensions_are_recorded_with_the_run(extended_run) -> None:
    from omegaconf import OmegaConf

    run_dir, _, _ = extended_run
    config = OmegaConf.load(run_dir / "round_01" / "config.yaml")
    assert config.model.name == "plain_adain" and config.pruning.method == "magnitude_at_init"
    assert config.pruning.magnitude_at_init.note == 3 and list(config.extensions) == ["my_extension"]


def test_the_report_shows_the_outside_model_method_and_metrics(extended_run) -> None:
    _, _, report = extended_run
    numbers = json.loads((report / "report.json").read_text())
    rounds = numbers["plain_adain"]["magnitude_at_init"]["rounds"]
    assert all("brightness_mean" in point and "content_gap_mean" in point for point in rounds)
    page = (report / "report.html").read_text()
    assert "brightness ↑" in page and "content gap ↓" in page  # the round table's columns, with their direction
    assert (report / "brightness_vs_sparsity-plain_adain.png").is_file()


def test_an_extension_that_cannot_be_imported_is_one_line(tmp_path: Path) -> None:
    result = lottery_style(["extensions=[no_such_module]", *TINY], tmp_path, tmp_path)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lottery-style: extensions=[no_such_module] cannot be imported")
