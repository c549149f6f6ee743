"""DDP inside a Hydra multirun: each job whose ranks Lightning would start itself runs in a child process.

Lightning's ``ddp`` strategy starts ranks 1..N-1 by re-running the command
line. Inside ``-m`` that command is the whole sweep, so every extra rank would
run its own copy of all jobs and write a phantom sweep folder. Such a job
instead runs ``python -m lottery_style.train`` on the job's own saved config
as a plain single run in the job's folder; Lightning re-launches that
command, which is just this one run again. Ranks started by a cluster (SLURM
tasks, torchrun) are left alone: nothing is re-launched there.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from lightning.fabric.plugins.environments import LSFEnvironment, SLURMEnvironment, TorchElasticEnvironment
from omegaconf import DictConfig, ListConfig, OmegaConf

from lottery_style.core.atomic import atomic_write_text
from lottery_style.tickets.paths import HYDRA_JOB_CONFIG, SUMMARY_JSON

log = logging.getLogger(__name__)
EXTERNAL_LAUNCHERS = (SLURMEnvironment, TorchElasticEnvironment, LSFEnvironment)
NON_RELAUNCHING = ("spawn", "fork", "notebook", "single_device")  # strategies that start ranks without argv


def single_device(devices: object) -> bool:
    if isinstance(devices, (list, ListConfig)):
        return len(devices) == 1
    return str(devices) == "1"


def relaunches_command(hardware: DictConfig) -> bool:
    """Whether Lightning would start the other ranks of a fit by re-running ``sys.argv``."""
    if hardware.num_nodes == 1 and single_device(hardware.devices):
        return False
    if any(env.detect() for env in EXTERNAL_LAUNCHERS):
        return False  # every rank already exists and runs this same job
    return not any(word in str(hardware.strategy) for word in NON_RELAUNCHING)


def needs_own_process(cfg: DictConfig) -> bool:
    """A multirun job whose DDP ranks would be started by re-running the sweep's command line."""
    return (
        HydraConfig.initialized()
        and HydraConfig.get().mode == RunMode.MULTIRUN
        and relaunches_command(cfg.hardware)
    )


def run_job_as_single_run(cfg: DictConfig) -> float:
    """Run this multirun job as ``python -m lottery_style.train`` on its saved config; return its extreme sparsity."""
    hydra_cfg = HydraConfig.get()
    job_dir = Path(hydra_cfg.runtime.output_dir)
    config_dir = job_dir / (hydra_cfg.output_subdir or ".hydra-job")
    if not (config_dir / HYDRA_JOB_CONFIG).is_file():  # hydra.output_subdir=null: Hydra saved nothing
        config_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(config_dir / HYDRA_JOB_CONFIG, OmegaConf.to_yaml(cfg))
    command = [
        sys.executable, "-m", "lottery_style.train",
        f"--config-dir={config_dir}", "--config-name=config",
        f'hydra.run.dir="{job_dir}"', "hydra.output_subdir=null",  # keep the job's own .hydra files
    ]  # fmt: skip
    log.info("DDP job %d runs in its own process: %s", hydra_cfg.job.num, " ".join(command))
    result = subprocess.run(command, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"multirun job {hydra_cfg.job.num} ({job_dir}) failed with exit code {result.returncode}")
    summary = json.loads((job_dir / SUMMARY_JSON).read_text())
    return float(summary["verdict"]["extreme_sparsity"])
