"""The paper's findings as recipes: paper-scale values, the grids Hydra runs, and one tiny run of each grid.

A recipe holds the paper's settings (COCO/WikiArt folders, pretrained VGG, a GPU, each
reference's batch and iterations); the same recipe shrunk from the command line must
still run here, so every test below starts from the recipe and undoes only the scale.
"""

from __future__ import annotations

import functools
import itertools
import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf

from lottery_style.core.conf_dir import CONF_DIR
from lottery_style.engine.compose import compose
from lottery_style.engine.lottery import LotteryRun
from lottery_style.models import MODEL_REGISTRY, create_model
from lottery_style.models.components.vgg import WeightsError
from lottery_style.pruning.masks import Masks, kept_counts
from lottery_style.tickets.paths import round_dir
from lottery_style.tickets.storage import load_round, load_round_masks
from tests.conftest import compose_train

PAPER = sorted(p.stem for p in (CONF_DIR / "experiment").glob("paper_*.yaml"))
FULL_SCOPE = ["encoder", "transform", "decoder"]
# Each reference's own training scale (docs/architectures.md, one section per model): batch, iterations per round, square resize.
REFERENCE = {
    "adain": (8, 160_000, 512),
    "sanet": (5, 160_000, 512),
    "lst": (8, 100_000, 256),
    "manet": (8, 160_000, 512),
    "adaattn": (8, 51_740, 512),
    "mccnet": (8, 160_000, 512),
}
# Undo the paper scale (conf/debug/recipe.yaml): test size, bundled images, CPU, no VGG file, 2 steps, one pair.
TEST_SCALE = ["debug=recipe"]


# ---------------------------------------------------------------- helpers
def with_hydra(overrides: list[str]) -> DictConfig:
    """The composed config with its ``hydra`` node (sweeper params, run and sweep folders)."""
    return compose(overrides, return_hydra_config=True)


def sweep_params(experiment: str) -> dict[str, str]:
    """The experiment's ``hydra.sweeper.params`` (empty for a single-run recipe)."""
    return dict(with_hydra([f"experiment={experiment}"]).hydra.sweeper.params or {})


def job_folder(experiment: str, point: list[str], *extra: str) -> str:
    """The folder name of a multirun job, checked equal to the single run's of the same config."""
    hydra = with_hydra([f"experiment={experiment}", *point, *extra]).hydra
    assert Path(hydra.sweep.dir, hydra.sweep.subdir) == Path(hydra.run.dir)
    return hydra.sweep.subdir


def grid(experiment: str, command_line: tuple[str, ...] = ()) -> list[list[str]]:
    """The jobs Hydra's basic sweeper launches for ``-m experiment=X <command_line>``, in launch order."""
    params = [f"{key}={value}" for key, value in sweep_params(experiment).items()]
    overrides = OverridesParser.create().parse_overrides([*params, *command_line])
    return [job for batch in BasicSweeper.split_arguments(overrides, None) for job in batch]


def compose_point(experiment: str, point: list[str], *extra: str, output_dir: Path | None = None) -> DictConfig:
    return compose_train([f"experiment={experiment}", *point, *extra], output_dir=output_dir)


def tiny_run(tmp: Path, experiment: str, point: list[str], *extra: str) -> list[dict[str, Any]]:
    """One grid point of ``experiment`` at test scale, through the engine; its summary rows."""
    cfg = compose_point(experiment, point, *TEST_SCALE, *extra, output_dir=tmp)
    return LotteryRun(cfg, tmp).run()["rows"]


def masks_of(run_dir: Path, index: int) -> Masks:
    return load_round_masks(round_dir(run_dir, index))


def metrics_of(run_dir: Path, index: int) -> dict[str, Any]:
    return json.loads((round_dir(run_dir, index) / "metrics.json").read_text())


def pruned_count(masks: Masks) -> int:
    return sum(m.numel() for m in masks.values()) - sum(kept_counts(masks).values())


def plain(node: Any) -> Any:
    """A config node as plain Python (enums as their values), for comparisons."""
    if OmegaConf.is_config(node):
        return OmegaConf.to_container(node, resolve=True, enum_to_str=True)
    return getattr(node, "value", node)


# ------------------------------------------------------ paper-scale values
@functools.cache
def paper_configs(experiment: str) -> list[DictConfig]:
    """Every job of the experiment (the one run of a single-run recipe) at the paper's scale."""
    return [compose_point(experiment, point) for point in grid(experiment)]


@pytest.mark.parametrize("experiment", PAPER)
def test_every_job_of_every_recipe_is_at_its_reference_scale(experiment: str) -> None:
    for cfg in paper_configs(experiment):
        name = cfg.model.name
        batch, steps, load = REFERENCE[name]
        data = cfg.data
        assert data.name == "folders"
        assert OmegaConf.is_missing(data, "content_dir") and OmegaConf.is_missing(data, "style_dir")
        assert (data.load_size, data.crop_size, data.batch_size) == (load, 256, batch)
        assert (data.eval_contents, data.eval_styles, data.eval_size) == (40, 100, 256)
        assert cfg.training.steps == steps
        assert plain(cfg.model.encoder)["weights"] == "normalised"
        assert cfg.model.encoder.path is None  # mandatory: refused at model build (next test)
        assert cfg.hardware.accelerator == "gpu"
        assert plain(cfg.model.optimizer) == plain(compose_train([f"model={name}"]).model.optimizer)
        assert cfg.pruning.rate == 0.2
        assert cfg.experiment_name == experiment
        if name == "lst":
            assert cfg.model.train_decoder and cfg.model.train_encoder  # the paper's LST+


def test_a_recipe_without_vgg_weights_stops_at_model_build_naming_the_key() -> None:
    cfg = compose_point("paper_adain_imp", [])
    with pytest.raises(WeightsError, match="model.encoder.path"):
        create_model(cfg.model)


# ----------------------------------------------------------------- grids
def job_values(experiment: str, *keys: str) -> list[tuple[Any, ...]]:
    return [tuple(plain(OmegaConf.select(cfg, key)) for key in keys) for cfg in paper_configs(experiment)]


def test_finding1_is_dense_fixed_vs_trained_encoder_on_adain_and_sanet() -> None:
    jobs = job_values("paper_finding1", "model.name", "model.train_encoder", "pruning.method")
    assert sorted(jobs) == sorted(itertools.product(["adain", "sanet"], [False, True], ["dense"]))


CONTROLS = ["random_prune", "random_reinit", "oneshot"]


def test_finding2_is_imp_with_its_three_controls_as_branches_on_adain_and_sanet() -> None:
    keys = ("model.name", "pruning.method", "pruning.scope", "pruning.rewind", "pruning.rounds", "pruning.branches")
    jobs = job_values("paper_finding2", *keys)
    assert jobs == [(m, "imp", FULL_SCOPE, "init", 12, CONTROLS) for m in ["adain", "sanet"]]
    assert all(cfg.pruning.source_run is None for cfg in paper_configs("paper_finding2"))  # the IMP run is the source


def test_finding3_is_sanet_imp_with_and_without_the_transform() -> None:
    jobs = job_values("paper_finding3", "model.name", "pruning.method", "pruning.scope", "pruning.rounds")
    assert jobs == [("sanet", "imp", FULL_SCOPE, 12), ("sanet", "imp", ["encoder", "decoder"], 12)]


def test_rewinding_rewinds_to_0_10_20_30_40_percent_of_a_round() -> None:
    jobs = job_values("paper_rewinding", "model.name", "pruning.rewind", "pruning.rewind_step", "training.steps")
    fractions = sorted({(model, step / steps) for model, rewind, step, steps in jobs if rewind == "step"})
    assert len(jobs) == len(fractions) == 10
    assert fractions == [(m, f) for m in ("adain", "sanet") for f in (0.0, 0.1, 0.2, 0.3, 0.4)]


def test_finding4_runs_imp_on_every_registered_model() -> None:
    jobs = job_values("paper_finding4", "model.name", "pruning.method", "pruning.scope", "pruning.rounds")
    assert sorted(jobs) == sorted((name, "imp", FULL_SCOPE, 12) for name in MODEL_REGISTRY)


def unnamed(experiment: str, point: list[str]) -> dict[str, Any]:
    """A job's whole config but its name: equal ones are the same run (tested once) in another folder."""
    return OmegaConf.to_container(compose_point(experiment, point), enum_to_str=True) | {"experiment_name": None}


@pytest.mark.parametrize("model", sorted(REFERENCE))
def test_a_single_model_recipe_is_its_finding4_job(model: str) -> None:
    assert unnamed(f"paper_{model}_imp", []) == unnamed("paper_finding4", [f"testbed={model}"])


def test_finding3_pt_job_is_the_sanet_recipe() -> None:
    """PT ranks the transform in the one global pool: test_all_models checks that on this very run."""
    assert unnamed("paper_finding3", ["pruning.scope=[encoder,transform,decoder]"]) == unnamed("paper_sanet_imp", [])


def test_the_command_line_narrows_a_grid_and_resizes_every_job() -> None:
    jobs = grid("paper_finding2", ("testbed=sanet", "seed=0,1", "data.crop_size=64"))
    assert jobs == [
        ["testbed=sanet", "seed=0", "data.crop_size=64"],
        ["testbed=sanet", "seed=1", "data.crop_size=64"],
    ]
    assert {compose_point("paper_finding2", job).data.crop_size for job in jobs} == {64}


# ------------------------------------------------- one tiny run per grid
def assert_controls_follow_imp(run_dir: Path, rounds: int) -> None:
    """The branches of an IMP run use its masks (random_reinit), its per-layer counts at other positions
    (random_prune) and its dense round 0 (all three, oneshot included)."""
    for control in CONTROLS:
        branch = run_dir / "branches" / control
        assert metrics_of(branch, 0)["E"] == metrics_of(run_dir, 0)["E"]  # the same dense round, not retrained
        assert [r["method"] for r in json.loads((branch / "summary.json").read_text())["rounds"]] == [control] * (rounds + 1)
    for index in range(1, rounds + 1):
        imp = masks_of(run_dir, index)
        reinit, random = masks_of(run_dir / "branches/random_reinit", index), masks_of(run_dir / "branches/random_prune", index)
        assert all(torch.equal(reinit[k], imp[k]) for k in imp)
        assert kept_counts(random) == kept_counts(imp) and any(not torch.equal(random[k], imp[k]) for k in imp)
        assert pruned_count(imp) == round((1 - 0.8**index) * sum(m.numel() for m in imp.values()))


def test_finding2_runs_its_controls_on_imp_masks_at_test_scale(tmp_path: Path) -> None:
    rows = tiny_run(tmp_path, "paper_finding2", ["testbed=adain"], "pruning.rounds=1")
    assert [(r["round"], r["method"]) for r in rows] == [(0, "imp"), (1, "imp")]
    assert all(math.isfinite(r["E"]) for r in rows)
    assert_controls_follow_imp(tmp_path, 1)


def test_sweep_controls_runs_its_controls_on_imp_masks_at_test_scale(tmp_path: Path) -> None:
    tiny_run(tmp_path, "sweep_controls", [], "pruning.rounds=2")
    assert_controls_follow_imp(tmp_path, 2)


def test_rewinding_point_runs_at_test_scale(tmp_path: Path) -> None:
    rows = tiny_run(tmp_path, "paper_rewinding", ["testbed=adain", "pruning.rewind_step=1"], "pruning.rounds=1")
    assert [r["round"] for r in rows] == [0, 1]
    config = OmegaConf.load(round_dir(tmp_path, 1) / "config.yaml")
    assert (config.pruning.rewind, config.pruning.rewind_step) == ("step", 1)


def test_finding3_nopt_keeps_the_transform_dense_while_the_rest_follows_the_schedule(tmp_path: Path) -> None:
    tiny_run(tmp_path, "paper_finding3", ["pruning.scope=[encoder,decoder]"], "pruning.rounds=2")
    for index in range(3):
        masks = masks_of(tmp_path, index)
        assert {name.split(".")[0] for name in masks} == {"encoder", "decoder"}
        assert pruned_count(masks) == round((1 - 0.8**index) * sum(m.numel() for m in masks.values()))
        metrics = metrics_of(tmp_path, index)
        assert metrics["sparsity_transform"] == 0.0
        assert metrics["sparsity"] == pytest.approx(1 - 0.8**index, abs=1e-6)
        weights = load_round(round_dir(tmp_path, index))[0]
        transform = [w for k, w in weights.items() if k.startswith("transform.") and k.endswith("weight")]
        assert transform and all(torch.count_nonzero(w) == w.numel() for w in transform)
        if index:
            assert metrics["sparsity_model"] < metrics["sparsity"]


@pytest.mark.slow
def test_finding1_grid_runs_as_one_multirun_command_with_test_sizes(tmp_path: Path) -> None:
    """``-m experiment=paper_finding1``: the grid comes from the file, the command line narrows and shrinks it,
    and each job lands in the folder its single run would use."""
    sweep_dir = tmp_path / "sweep"
    args = [sys.executable, "-m", "lottery_style.train", "-m", "experiment=paper_finding1", "testbed=adain"]
    args += [*TEST_SCALE, f"hydra.sweep.dir={sweep_dir}"]
    env = {**os.environ, "CI": "true", "OMP_NUM_THREADS": "1"}
    result = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, check=False, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    expected = {
        encoder: job_folder("paper_finding1", ["testbed=adain", f"model.train_encoder={encoder}"], *TEST_SCALE)
        for encoder in (False, True)
    }
    assert sorted(p.name for p in sweep_dir.iterdir() if p.is_dir()) == sorted(expected.values())
    for encoder, folder in expected.items():
        job = sweep_dir / folder
        assert (round_dir(job, 0) / "DONE").is_file() and not round_dir(job, 1).exists()
        config = OmegaConf.load(round_dir(job, 0) / "config.yaml")
        assert (config.model.name, config.model.train_encoder, config.pruning.method) == ("adain", encoder, "dense")
        assert (config.data.crop_size, config.training.steps) == (32, 2)
