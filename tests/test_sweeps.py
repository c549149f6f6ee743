"""Sweep presets: each expands, through Hydra's basic sweeper, into valid jobs with the intended schedules."""

from __future__ import annotations

import pytest
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser

from lottery_style.engine.compose import compose
from lottery_style.engine.schedule import round_sparsities
from lottery_style.engine.validation import check_config
from tests.conftest import TINY, compose_train


def sweep_jobs(preset: str, *extra: str) -> list[list[str]]:
    """The job overrides the basic sweeper launches for ``-m experiment=<preset> <extra>``."""
    cfg = compose([f"experiment={preset}"], return_hydra_config=True)
    params = [f"{key}={value}" for key, value in cfg.hydra.sweeper.params.items()]
    overrides = OverridesParser.create().parse_overrides([*params, *extra])
    (batch,) = BasicSweeper.split_arguments(overrides, max_batch_size=None)
    return batch


def job_schedules(preset: str, *extra: str) -> list[list[float]]:
    schedules = []
    for job in sweep_jobs(preset, *extra):
        cfg = compose_train([*TINY, f"experiment={preset}", *job], output_dir=None)
        check_config(cfg)
        schedules.append([round(s, 4) for s in round_sparsities(cfg)])
    return schedules


def test_rate_sweep_reaches_the_same_target_at_every_rate() -> None:
    schedules = job_schedules("sweep_rate")
    assert [len(s) - 1 for s in schedules] == [16, 8, 5, 3]  # rounds after the dense round 0
    assert [s[1] for s in schedules] == [0.1, 0.2, 0.3, 0.5]
    assert all(s[-1] >= 0.8 > s[-2] for s in schedules)


def test_explicit_sparsity_lists_are_swept_as_whole_schedules() -> None:
    assert job_schedules("sweep_sparsities") == [
        [0.0, 0.8],
        [0.0, 0.4, 0.65, 0.8],
        [0.0, 0.2, 0.36, 0.49, 0.59, 0.67, 0.8],
    ]


def test_controls_sweep_runs_imp_with_each_control_as_a_branch_over_three_seeds() -> None:
    jobs = sweep_jobs("sweep_controls")
    configs = [compose_train([*TINY, "experiment=sweep_controls", *job]) for job in jobs]
    assert [(cfg.pruning.method, list(cfg.pruning.branches), cfg.seed) for cfg in configs] == [
        ("imp", ["random_prune", "random_reinit", "oneshot"], seed) for seed in (0, 1, 2)
    ]
    assert len({tuple(s) for s in job_schedules("sweep_controls")}) == 1


@pytest.mark.parametrize("preset", ["sweep_rate", "sweep_sparsities", "sweep_controls"])
def test_command_line_sweeps_combine_with_a_preset(preset: str) -> None:
    """Methods and models swept on the command line multiply the preset's jobs."""
    assert len(sweep_jobs(preset, "model=adain,sanet")) == 2 * len(sweep_jobs(preset))
