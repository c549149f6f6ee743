"""Entry point: ``python -m lottery_style.train [overrides]`` or ``lottery-style [overrides]``.

The configs are the repository's top-level ``conf/``, shipped inside the package
(``lottery_style/conf_dir.py`` finds them), so the command works from any
directory with an editable install, ``pip install .`` or a wheel.
"""

from __future__ import annotations

import logging

import hydra
import torch
from omegaconf import DictConfig, OmegaConf

from lottery_style.conf_dir import CONF_DIR
from lottery_style.data.images import DataError
from lottery_style.launch import needs_own_process, run_job_as_single_run
from lottery_style.lottery import LotteryRun
from lottery_style.models.vgg import WeightsError
from lottery_style.resume import check_resumable
from lottery_style.run_identity import run_id
from lottery_style.schemas import register_configs
from lottery_style.terminal import quiet_terminal
from lottery_style.validation import ConfigError, check_config

log = logging.getLogger(__name__)


# ${run_id:} in conf/: the hash of the result-defining keys names the run folder (lottery_style/run_identity.py).
OmegaConf.register_new_resolver("run_id", run_id, replace=True)
register_configs()


def train(cfg: DictConfig) -> float:
    """Run the configured IMP run (or control); return the extreme sparsity, the metric a sweeper maximises."""
    quiet_terminal(bool(cfg.logger.verbose))
    check_config(cfg)
    check_resumable(cfg, cfg.output_dir)
    if needs_own_process(cfg):
        return run_job_as_single_run(cfg)  # DDP in a multirun: see lottery_style/launch.py
    if cfg.hardware.matmul_precision:
        torch.set_float32_matmul_precision(cfg.hardware.matmul_precision)
    result = LotteryRun(cfg, cfg.output_dir).run()
    return float(result["verdict"].extreme_sparsity)


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="train")
def main(cfg: DictConfig) -> float:
    try:
        return train(cfg)
    except (ConfigError, DataError, WeightsError) as error:
        raise SystemExit(f"lottery-style: {error}") from None


if __name__ == "__main__":
    main()
