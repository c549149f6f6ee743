"""Refuse to resume a run folder with a config that would compute another result.

A run folder is named by the hash of its result-defining keys
(:mod:`lottery_style.tickets.identity`), but an explicit ``hydra.run.dir`` (or a
sweep folder) can point a different experiment at an existing folder: its
finished rounds would then be mixed with new ones. ``run_config.yaml``, written
when a run starts, records the config; a rerun may change display and speed
knobs (progress bar, checkpoint interval, logger, ...) but not a result-defining key.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from lottery_style.core.atomic import atomic_write_text
from lottery_style.core.config import ConfigError
from lottery_style.tickets.identity import changed_keys
from lottery_style.tickets.paths import ROUND_CONFIG, RUN_CONFIG, round_dir


def stored_config(run_dir: str | Path) -> DictConfig | None:
    """The config a run started with: ``run_config.yaml``, else (runs older than it) round 0's ``config.yaml``."""
    for path in (Path(run_dir) / RUN_CONFIG, round_dir(run_dir, 0) / ROUND_CONFIG):
        if path.is_file():
            return OmegaConf.load(path)  # type: ignore[return-value]
    return None


def check_resumable(cfg: DictConfig, run_dir: str | Path) -> None:
    """Raise :class:`ConfigError` naming every result-defining key that differs from the stored run's;
    record ``run_config.yaml`` when the folder has none yet."""
    stored = stored_config(run_dir)
    if stored is not None:
        changes = changed_keys(stored, cfg)
        if changes:
            listed = "; ".join(f"{key}={old!r} -> {new!r}" for key, old, new in changes)
            raise ConfigError(
                f"{run_dir} holds a run with other result-defining values ({listed}): "
                "expected the same values to resume it, or another output folder"
            )
    if not (Path(run_dir) / RUN_CONFIG).is_file():
        atomic_write_text(Path(run_dir) / RUN_CONFIG, OmegaConf.to_yaml(cfg, resolve=True))
