"""A Hydra callback that writes the report of a multirun when its last job ends.

A preset that sweeps replicates (``seed=0,1,2``) is answered by the report over
all its jobs, not by any one job's table; with this callback in
``hydra.callbacks`` the one command that runs the sweep also writes
``<sweep dir>/report/`` (``lottery-style report`` on the sweep folder).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from lottery_style.tickets.paths import REPORT_DIR
from lottery_style.tools.report import write_report

log = logging.getLogger(__name__)


class WriteReportAfterSweep(Callback):
    """``on_multirun_end``: the report of every run under the sweep folder, in its ``report/`` subfolder."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        page = write_report([sweep_dir], sweep_dir / REPORT_DIR)
        print(f"report: {page}")
        log.info("report of %s written to %s", sweep_dir, page)
