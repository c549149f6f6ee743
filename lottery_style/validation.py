"""Checks that a composed config makes sense before anything is built or trained.

The typed schemas already reject misspelled keys, wrong types and unknown enum
values at composition; these are the cross-field rules a schema cannot express.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from lottery_style.config import Method, Rewind
from lottery_style.data.datamodule import check_data_config
from lottery_style.models import model_class


class ConfigError(ValueError):
    """A config value that cannot work; the message names the key, the value and what was expected."""


def check_config(cfg: DictConfig) -> None:
    from lottery_style.lottery import round_sparsities

    pruning, training, data = cfg.pruning, cfg.training, cfg.data
    if training.steps < 1:
        raise ConfigError(f"training.steps={training.steps} is invalid: expected a positive number of steps")
    if training.checkpoint_every < 1:
        raise ConfigError(f"training.checkpoint_every={training.checkpoint_every} is invalid: expected >= 1")
    if Method(pruning.method) != Method.dense:
        if not 0.0 < pruning.rate < 1.0:
            raise ConfigError(f"pruning.rate={pruning.rate} is invalid: expected a fraction in (0, 1)")
        if not pruning.scope:
            raise ConfigError("pruning.scope is empty: expected some of [encoder, transform, decoder]")
        try:
            round_sparsities(cfg)
        except ValueError as error:
            raise ConfigError(str(error)) from None
    if Rewind(pruning.rewind) == Rewind.step and not 0 <= pruning.rewind_step < training.steps:
        raise ConfigError(
            f"pruning.rewind_step={pruning.rewind_step} is invalid: expected 0 <= k < training.steps={training.steps}"
        )
    if pruning.matching_tolerance < 0:
        raise ConfigError(f"pruning.matching_tolerance={pruning.matching_tolerance} is invalid: expected >= 0")
    if pruning.source_run is not None and not Path(pruning.source_run, "round_00").is_dir():
        raise ConfigError(f"pruning.source_run={pruning.source_run} is not an IMP run folder (no round_00 inside)")
    check_data_config(data, training.steps)  # one epoch per round: see LotteryRun._build
    multiple = model_class(cfg.model.name).size_multiple
    for key in ("crop_size", "eval_size"):
        if data[key] % multiple:
            raise ConfigError(f"data.{key}={data[key]} is invalid for model {cfg.model.name}: expected a multiple of {multiple}")
