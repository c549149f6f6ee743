"""A multirun through hydra-submitit's local launcher: each job runs in a process of its own that unpickles its
task, the way a SLURM job does, and must compose its config with the schemas and the ``run_id`` resolver that
the launching process registered (Hydra ships both with every job).

The job folders are named ``${run_id:}`` (``hydra.sweep.subdir``), which each job resolves itself before it
runs the task: a job without the resolver fails there, and one without the schemas fails composing its config.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from lottery_style.core.extras import OPTION_EXTRAS, installed
from lottery_style.engine.compose import compose
from lottery_style.tickets.paths import SUMMARY_JSON
from tests.conftest import TINY

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not installed(OPTION_EXTRAS["launcher=slurm"][0]),
        reason="hydra-submitit-launcher is not installed (pip install -e '.[slurm]')",
    ),
]

RUN = [*TINY, "pruning.rounds=1", "training.steps=2"]
LAUNCHER = ["hydra/launcher=submitit_local", "hydra.launcher.tasks_per_node=1", "hydra.launcher.gpus_per_node=0",
            "hydra.launcher.cpus_per_task=1", "hydra.launcher.timeout_min=15"]  # fmt: skip


def run_id_of(*overrides: str) -> str:
    """The run id the single run of the same config gets (the last part of its folder's name)."""
    return str(compose([*RUN, *overrides], return_hydra_config=True).hydra.run.dir).rsplit("-", 1)[1]


def job_logs(sweep: Path) -> str:
    return "\n".join(f"--- {p}\n{p.read_text()[-2000:]}" for p in sorted(sweep.glob(".submitit/*/*_log.*")))


def test_two_submitit_local_jobs_register_what_their_config_needs_and_finish(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    args = [sys.executable, "-m", "lottery_style", "-m", *LAUNCHER, *RUN, "seed=0,1", f"hydra.sweep.dir={sweep}",
            "hydra.sweep.subdir=${run_id:}"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, check=False, text=True, timeout=1200)
    assert result.returncode == 0, result.stderr[-3000:] + job_logs(sweep)
    for seed in (0, 1):
        job = sweep / run_id_of(f"seed={seed}")
        assert (job / SUMMARY_JSON).is_file(), f"{job} has no {SUMMARY_JSON}: {sorted(p.name for p in sweep.iterdir())}"
