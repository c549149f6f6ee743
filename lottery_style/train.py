"""The Hydra app: ``lottery-style [overrides]``, ``python -m lottery_style [overrides]`` or ``python -m lottery_style.train``.

The configs are the repository's top-level ``conf/``, shipped inside the package
(``lottery_style/core/conf_dir.py`` finds them), so the command works from any
directory with an editable install, ``pip install .`` or a wheel.
"""

from __future__ import annotations

import logging
import sys

import hydra
import torch
from omegaconf import DictConfig

from lottery_style.core.conf_dir import CONF_DIR
from lottery_style.core.config import ConfigError
from lottery_style.data.images import DataError
from lottery_style.engine.compose import register
from lottery_style.engine.extensions import extensions_in, load_extensions
from lottery_style.engine.launch import needs_own_process, run_job_as_single_run
from lottery_style.engine.lottery import LotteryRun
from lottery_style.engine.resume import check_resumable
from lottery_style.engine.terminal import quiet_terminal
from lottery_style.engine.unstarted import discard_unstarted_job
from lottery_style.engine.validation import check_config
from lottery_style.models.components.vgg import WeightsError

log = logging.getLogger(__name__)


def train(cfg: DictConfig) -> float:
    """Run the configured IMP run (or control); return the extreme sparsity, the metric a sweeper maximises."""
    quiet_terminal(bool(cfg.logger.verbose))
    load_extensions(cfg.extensions)  # already imported when this process composed cfg; not in a launcher's job
    check_config(cfg)
    check_resumable(cfg, cfg.output_dir)
    if needs_own_process(cfg):
        return run_job_as_single_run(cfg)  # DDP in a multirun: see lottery_style/engine/launch.py
    if cfg.hardware.matmul_precision:
        torch.set_float32_matmul_precision(cfg.hardware.matmul_precision)
    result = LotteryRun(cfg, cfg.output_dir).run()
    return float(result["verdict"].extreme_sparsity)


def run(cfg: DictConfig) -> float:
    """What Hydra runs for each job: :func:`train`, a user's mistake ending it in one line instead of a traceback,
    and leaving no folder when the run never started (:func:`discard_unstarted_job`)."""
    try:
        return train(cfg)
    except (ConfigError, DataError, WeightsError) as error:
        discard_unstarted_job()
        raise SystemExit(f"lottery-style: {error}") from None


def main() -> None:
    """Compose the config from the command line and run the job(s), as ``lottery-style [overrides]`` does.

    Registration comes first (:func:`register`), after the extensions the command line names. A launcher that
    runs jobs in other processes (submitit: SLURM or local) needs nothing more: Hydra hands every job its
    ConfigStore and OmegaConf's resolvers with the job (``hydra.core.singleton.Singleton.get_state``), so a job
    composes with what this process registered, and :func:`train` imports the config's extensions in it.
    """
    try:
        register(extensions_in(sys.argv[1:]))
    except ConfigError as error:  # an extension that cannot be imported
        raise SystemExit(f"lottery-style: {error}") from None
    hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="train")(run)()


if __name__ == "__main__":
    main()
