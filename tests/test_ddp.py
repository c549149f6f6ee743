"""Multi-process training: identical masks on every DDP rank, DDP inside a multirun, the SLURM launcher."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from omegaconf import OmegaConf

from lottery_style.core.extras import OPTION_EXTRAS, installed
from lottery_style.engine.compose import compose
from lottery_style.engine.launch import relaunches_command
from lottery_style.pruning.callback import MaskCallback, masks_digest
from lottery_style.tickets.paths import REWIND_FILE, TICKET_FILE
from lottery_style.tickets.storage import load_round_masks
from tests.conftest import TINY, compose_train

TICKET_FILES = {"DONE", "config.yaml", "grid.png", "logs", "metrics.json", TICKET_FILE}


def run_cli(
    args: list[str], cwd: Path, multirun: bool = False, hardware: str = "ddp_cpu"
) -> subprocess.CompletedProcess:
    env = {**os.environ, "CI": "true"}
    mode = ["-m"] if multirun else []
    command = [sys.executable, "-m", "lottery_style.train", *mode, *TINY, "training.steps=2", f"hardware={hardware}",
               *args]  # fmt: skip
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, check=False, text=True, timeout=900, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def metrics(run_dir: Path, index: int) -> dict:
    return json.loads((run_dir / f"round_{index:02d}" / "metrics.json").read_text())


# ------------------------------------------------------------------ unit tests
@pytest.mark.parametrize(
    ("hardware", "relaunches"),
    [
        ({"devices": 1, "strategy": "ddp"}, False),
        ({"devices": 2, "strategy": "ddp"}, True),
        ({"devices": 2, "strategy": "auto"}, True),  # Lightning picks ddp for several devices
        ({"devices": [0, 1], "strategy": "ddp_find_unused_parameters_true"}, True),
        ({"devices": 2, "strategy": "ddp_spawn"}, False),
        ({"devices": 1, "strategy": "ddp", "num_nodes": 2}, True),
    ],
)
def test_which_strategies_relaunch_the_command(hardware: dict, relaunches: bool, monkeypatch) -> None:
    for name in ("SLURM_NTASKS", "LOCAL_RANK", "RANK", "TORCHELASTIC_RUN_ID", "LSB_JOBID"):
        monkeypatch.delenv(name, raising=False)
    assert relaunches_command(OmegaConf.create({"num_nodes": 1, **hardware})) is relaunches


def test_ranks_started_by_slurm_are_never_relaunched(monkeypatch) -> None:
    monkeypatch.setenv("SLURM_NTASKS", "2")
    monkeypatch.setenv("SLURM_JOB_NAME", "train")
    assert not relaunches_command(OmegaConf.create({"num_nodes": 1, "devices": 2, "strategy": "ddp"}))


def test_ranks_with_different_masks_refuse_to_train() -> None:
    masks = {"decoder.w": torch.tensor([True, False, True])}
    other = masks_digest({"decoder.w": torch.tensor([True, True, True])})

    def all_gather(local: torch.Tensor) -> torch.Tensor:  # rank 1 computed other masks
        return torch.stack([local, torch.tensor(list(other), dtype=local.dtype)])

    trainer = SimpleNamespace(world_size=2, strategy=SimpleNamespace(all_gather=all_gather))
    with pytest.raises(RuntimeError, match="DDP ranks hold different masks"):
        MaskCallback(masks).on_fit_start(trainer, SimpleNamespace(device=torch.device("cpu")))


@pytest.mark.skipif(
    not installed(OPTION_EXTRAS["launcher=slurm"][0]),
    reason="hydra-submitit-launcher is not installed (pip install -e '.[slurm]')",
)
def test_slurm_launcher_runs_one_task_per_device() -> None:
    overrides = ["launcher=slurm", "hardware=ddp", "hardware.devices=4", "hardware.num_nodes=2"]
    cfg = compose(overrides, return_hydra_config=True)
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("submitit_launcher.SlurmLauncher")
    assert (launcher.tasks_per_node, launcher.gpus_per_node, launcher.nodes) == (4, 4, 2)
    assert compose_train(overrides).hardware.strategy == "ddp"


# ------------------------------------------------------------------ end to end
@pytest.mark.slow
def test_two_rank_imp_run_has_identical_masks_the_schedule_and_one_set_of_tickets(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run_cli(["pruning.rounds=2", f"hydra.run.dir={run_dir}"], cwd=tmp_path)
    for index in range(3):
        recorded = metrics(run_dir, index)
        hashes = recorded["mask_hashes"]
        assert len(hashes) == 2 and hashes[0] == hashes[1], hashes  # one per rank, equal
        saved = load_round_masks(run_dir / f"round_{index:02d}")
        assert masks_digest(saved).hex() == hashes[0]
        assert recorded["sparsity"] == pytest.approx(1 - 0.8**index, abs=1e-6)
        assert {p.name for p in (run_dir / f"round_{index:02d}").iterdir()} == TICKET_FILES
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
    rounds = json.loads((run_dir / "summary.json").read_text())["rounds"]
    assert [row["round"] for row in rounds] == [0, 1, 2]


@pytest.mark.slow
def test_every_rank_of_a_dense_run_finishes_after_rank_zero_wrote_the_summary(tmp_path: Path) -> None:
    """Only rank 0 writes the summary; rank 1 waits for it and finishes too (its own log says so)."""
    run_dir = tmp_path / "run"
    run_cli(["pruning=dense", f"hydra.run.dir={run_dir}"], cwd=tmp_path)
    assert "rank 1: run finished" in (run_dir / "train_ddp_process_1.log").read_text()
    assert "rank 0: run finished" in (run_dir / "train.log").read_text()
    assert [row["round"] for row in json.loads((run_dir / "summary.json").read_text())["rounds"]] == [0]


@pytest.mark.slow
def test_ddp_multirun_leaves_exactly_its_job_folders(tmp_path: Path) -> None:
    """Each job runs once, as a single run of its own; no re-launched rank runs the sweep again."""
    run_cli(["pruning=dense", "seed=0,1"], cwd=tmp_path, multirun=True)
    (sweep,) = (tmp_path / "outputs" / "multirun" / "quickstart").iterdir()  # no phantom sweep folder
    assert sorted(p.name for p in tmp_path.rglob("*") if p.parent == tmp_path) == ["outputs"]
    assert sorted(p.name for p in sweep.iterdir()) == ["0", "1", "multirun.yaml"]
    expected = {".hydra", "round_00", REWIND_FILE, "run_config.yaml", "summary.csv", "summary.json", "train.log",
                "train_ddp_process_1.log"}  # fmt: skip
    for seed in (0, 1):
        job = sweep / str(seed)
        assert {p.name for p in job.iterdir()} == expected
        assert OmegaConf.load(job / "round_00" / "config.yaml").seed == seed
        assert len(metrics(job, 0)["mask_hashes"]) == 2
