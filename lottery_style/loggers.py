"""Experiment loggers: one Lightning logger per round, and what is recorded at round and run end.

The driver only talks to :class:`RunLogger`, so adding a tracker (W&B) adds a
class here and a ``logger=`` config, and touches nothing in the engine.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lightning.pytorch.loggers import CSVLogger, Logger
from omegaconf import DictConfig

from lottery_style.tickets import Verdict


class RunLogger:
    """CSV metrics per round inside the round's folder; the run summary is on disk already."""

    def __init__(self, cfg: DictConfig, run_dir: Path):
        self.cfg = cfg
        self.run_dir = run_dir

    def round_logger(self, index: int, info: dict[str, Any]) -> Logger:
        return CSVLogger(save_dir=str(self.run_dir / f"round_{index:02d}"), name="logs", version="")

    def end_round(self, index: int, metrics: dict[str, Any], ticket_dir: Path) -> None:
        """Nothing to add for CSV: the ticket folder holds the metrics."""

    def finish(self, rows: Sequence[dict[str, Any]], verdict: Verdict) -> None:
        """Nothing to add for CSV: summary.csv/json hold the table."""


LOGGERS: dict[str, type[RunLogger]] = {"csv": RunLogger}


def build_run_logger(cfg: DictConfig, run_dir: Path) -> RunLogger:
    name = cfg.logger.name
    if name not in LOGGERS:
        raise ValueError(f"logger.name={name!r} is unknown: expected one of {sorted(LOGGERS)}")
    return LOGGERS[name](cfg, run_dir)
