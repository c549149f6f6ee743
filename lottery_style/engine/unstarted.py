"""A job that fails its checks leaves nothing behind: Hydra's files of a run that never started are removed.

Hydra makes the job's folder, its ``.hydra/`` record and an empty ``<job>.log``
before the task runs, so a run refused for a bad value (``seed=-1``) would leave
a run folder with nothing in it, and in a sweep a sweep folder holding only
``multirun.yaml``. Only what Hydra wrote goes, and a folder only when nothing
else is in it: the folder of an earlier run (rounds, ``run_config.yaml``, a log
with lines in it) keeps everything.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode

from lottery_style.tickets.paths import HYDRA_RECORD_FILES, MULTIRUN_RECORD


def _close_log(log_file: Path) -> None:
    """Hydra's file handler of the job log, closed and detached so that nothing writes to a removed file."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, logging.FileHandler) and Path(handler.baseFilename) == log_file.resolve():
            root.removeHandler(handler)
            handler.close()


def _holds_only_hydras_files(job_dir: Path, log_file: Path, record: Path | None) -> bool:
    if any(path not in (log_file, record) for path in job_dir.iterdir()):
        return False
    if log_file.is_file() and log_file.stat().st_size > 0:
        return False
    return record is None or not record.exists() or {p.name for p in record.iterdir()} <= HYDRA_RECORD_FILES


def discard_unstarted_job() -> None:
    """Remove the job folder Hydra made for this job (and an emptied sweep folder), if only Hydra wrote there."""
    if not HydraConfig.initialized():
        return
    hydra_cfg = HydraConfig.get()
    job_dir = Path(hydra_cfg.runtime.output_dir)
    log_file = job_dir / f"{hydra_cfg.job.name}.log"
    record = job_dir / hydra_cfg.output_subdir if hydra_cfg.output_subdir else None
    if not job_dir.is_dir() or not _holds_only_hydras_files(job_dir, log_file, record):
        return
    _close_log(log_file)
    if record is not None:
        shutil.rmtree(record, ignore_errors=True)
    log_file.unlink(missing_ok=True)
    job_dir.rmdir()
    if hydra_cfg.mode == RunMode.MULTIRUN:
        sweep_dir = Path(hydra_cfg.sweep.dir)
        if sweep_dir.is_dir() and {p.name for p in sweep_dir.iterdir()} <= {MULTIRUN_RECORD}:
            (sweep_dir / MULTIRUN_RECORD).unlink(missing_ok=True)
            sweep_dir.rmdir()
