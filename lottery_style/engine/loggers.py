"""Experiment loggers: one Lightning logger per round, and what is recorded at round and run end.

The driver only talks to :class:`RunLogger`, so adding a tracker adds a class
here and a ``logger=`` config, and touches nothing in the engine.

W&B layout (``logger=wandb``): one W&B run per round (one ticket), all rounds of
one IMP run in one group, ``job_type`` = the method, and one extra run per IMP
run with ``job_type="summary"`` that holds the table of all rounds and the
extreme sparsity. A separate summary run (rather than the last round's run) is
always there, also when a rerun only re-reads finished rounds, and gives sweeps
one run per job to compare on the verdict.

Training metrics carry the schedule's step, the step of round 0 they
correspond to, rather than each fit's own counter: a fit of steps k..T (a
ticket under weight rewinding to step k, round 0's second half) logs k..T, so
dense and ticket curves overlay on one axis (:class:`ScheduleStep`). A resumed
round keeps the training log it wrote before the interruption
(:class:`ResumedCSVWriter`).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import netrc
import os
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from lightning.fabric.loggers.logger import rank_zero_experiment
from lightning.pytorch.loggers import CSVLogger, Logger, WandbLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from lottery_style.core.atomic import atomic_write_text
from lottery_style.core.config import ConfigError
from lottery_style.tickets.paths import GRID_FILE, LOGS_DIR, METRICS_FILE, TICKET_FILE, WANDB_DIR, branch_dir, round_dir
from lottery_style.tickets.verdict import Verdict, summary_fields

WANDB_MODES = ("online", "offline", "disabled")
LEGACY_MODES = {"dryrun": "offline", "run": "online"}  # older WANDB_MODE values W&B still accepts
TICKET_FILES = (TICKET_FILE, METRICS_FILE)  # weights and masks are one file


class ScheduleStep:
    """A Lightning logger mixin that writes ``start_step`` + the fit's own step.

    Every fit counts its steps from 0 (a fresh Trainer per fit), and Lightning
    passes that count to ``log_metrics``. :func:`start_fit` sets ``start_step``
    to the first step of the fit's segment before each fit, so the logged step
    is the schedule's step (a resumed fit restores its count from the checkpoint,
    so it continues on the same axis).
    """

    start_step = 0

    def log_metrics(self, metrics: dict[str, Any], step: int | None = None) -> None:
        super().log_metrics(metrics, None if step is None else step + self.start_step)  # type: ignore[misc]


class ResumedCSVWriter(ExperimentWriter):
    """Lightning's CSV writer, except that a ``metrics.csv`` already in the folder (a resumed round's) is kept.

    Lightning deletes it ("Previous log files ... will be deleted"), losing the
    curve of the interrupted fit. Here its rows stay, but for those at or past
    the first step the resumed fit logs: training resumes from the last
    checkpoint, so the steps logged between that checkpoint and the
    interruption are trained, and logged, again; their new rows replace the old.
    """

    def _check_log_dir_exists(self) -> None:
        """Read the earlier log instead of deleting it (called by the constructor)."""
        path = Path(self.metrics_file_path)
        self.earlier = list(csv.DictReader(path.open(newline=""))) if path.is_file() else None

    def save(self) -> None:
        if self.earlier is not None and self.metrics:
            first = min(int(row["step"]) for row in self.metrics)
            kept = [row for row in self.earlier if int(row["step"]) < first]
            self.metrics_keys = sorted(set().union(*kept))
            buffer = io.StringIO()
            writer = csv.DictWriter(buffer, fieldnames=self.metrics_keys)
            writer.writeheader()
            writer.writerows(kept)
            if kept:
                atomic_write_text(self.metrics_file_path, buffer.getvalue())
            else:
                Path(self.metrics_file_path).unlink()
            self.earlier = None
        super().save()


class ScheduleCSVLogger(ScheduleStep, CSVLogger):
    """The CSV log of one fit folder (``<folder>/logs/metrics.csv``): on the schedule's step, kept on resume."""

    def __init__(self, folder: Path):
        super().__init__(save_dir=str(folder), name=LOGS_DIR, version="")

    @property
    @rank_zero_experiment
    def experiment(self) -> ResumedCSVWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = ResumedCSVWriter(log_dir=self.log_dir)
        return self._experiment


class ScheduleWandbLogger(ScheduleStep, WandbLogger):
    """W&B's Lightning logger on the schedule's step (``trainer/global_step``)."""


def start_fit(logger: Logger | list[Logger], start_step: int) -> None:
    """Before a fit of segment ``start_step``..: put its loggers on the schedule's step (see :class:`ScheduleStep`)."""
    for each in logger if isinstance(logger, list) else [logger]:
        if not isinstance(each, ScheduleStep):
            raise TypeError(f"{type(each).__name__} logs each fit's own step: expected a ScheduleStep logger")
        each.start_step = start_step


class RunLogger:
    """CSV metrics per round inside the round's folder; the run summary is on disk already."""

    def __init__(self, cfg: DictConfig, run_dir: Path):
        self.cfg = cfg
        self.run_dir = run_dir

    def round_logger(self, index: int, info: dict[str, Any]) -> Logger | list[Logger]:
        return ScheduleCSVLogger(round_dir(self.run_dir, index))

    def end_round(self, index: int, metrics: dict[str, Any], ticket_dir: Path) -> None:
        """Nothing to add for CSV: the ticket folder holds the metrics."""

    def finish(self, rows: Sequence[dict[str, Any]], verdict: Verdict) -> None:
        """Nothing to add for CSV: summary.csv/json hold the table."""

    def log_analysis(self, name: str, records: Sequence[dict[str, Any]]) -> None:
        """Nothing to add for CSV: the analysis folder holds its records."""

    def sync_command(self) -> str | None:
        """The command that uploads what this run logged offline (None: nothing to upload)."""
        return None


def api_key_configured() -> bool:
    """Whether W&B would find an API key without asking: ``WANDB_API_KEY`` or a netrc entry for its host."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname
    try:
        return netrc.netrc(os.environ.get("NETRC")).authenticators(host or "") is not None
    except (OSError, netrc.NetrcParseError):
        return False


def wandb_mode(mode: str | None) -> str:
    """``logger.mode``, else ``WANDB_MODE``, else online with an API key and offline without one.

    Never "ask": a machine without a key (CI, a cluster node) logs offline
    instead of prompting or failing.
    """
    if mode is None:
        env = os.environ.get("WANDB_MODE")
        mode = LEGACY_MODES.get(env, env) if env else ("online" if api_key_configured() else "offline")
    if mode not in WANDB_MODES:
        raise ConfigError(f"logger.mode={mode!r} is invalid: expected one of {list(WANDB_MODES)} or null")
    return mode


def wandb_group(experiment_name: str, run_dir: Path) -> str:
    """The run folder's path from its experiment folder: unique per IMP run, and a resumed run keeps its group.

    ``outputs/quickstart/adain-imp-1a2b3c4d`` -> ``quickstart/adain-imp-1a2b3c4d``;
    a multirun job ``outputs/multirun/sweep_rate/<time>/3`` -> ``sweep_rate/<time>/3``;
    a folder outside an experiment folder -> ``<experiment>/<folder name>-<hash of its path>``.
    """
    path = run_dir.resolve()
    starts = [i for i, part in enumerate(path.parts[:-1]) if part == experiment_name]
    if starts:
        return "/".join(path.parts[starts[-1] :])
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:6]  # a folder elsewhere: its name alone may repeat
    return f"{experiment_name}/{run_dir.name}-{digest}"


def finish_stray_run() -> None:
    """A run still open when a new one starts belongs to a round or job that failed: close it as failed,
    so that nothing of this round lands in it (``WandbLogger`` would silently reuse it)."""
    import wandb

    if wandb.run is not None:
        wandb.run.finish(exit_code=1)


@contextmanager
def data_dir(path: Path) -> Iterator[None]:
    """W&B keeps a copy of a logged table in its data folder (~/.local/share/wandb) until it is synced:
    point it into the run folder instead, unless the user chose a folder (``WANDB_DATA_DIR``)."""
    if "WANDB_DATA_DIR" in os.environ:
        yield
        return
    os.environ["WANDB_DATA_DIR"] = str(path)
    try:
        yield
    finally:
        del os.environ["WANDB_DATA_DIR"]


def scalars(metrics: dict[str, Any]) -> dict[str, float]:
    return {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


class WandbRunLogger(RunLogger):
    """One W&B run per round in one group per IMP run, plus a summary run; only rank 0 logs.

    Round-level values are in each run's config (``round``, ``method``,
    ``sparsity``, with the resolved config), because W&B groups and filters by
    config keys. Training metrics are on the schedule's step (``trainer/global_step``); the
    summary run has them per round on a ``round`` axis. The CSV logs stay in
    the round folders, so a run folder looks the same with either logger.
    """

    def __init__(self, cfg: DictConfig, run_dir: Path):
        super().__init__(cfg, run_dir)
        self.mode = wandb_mode(cfg.logger.mode)
        self.group = wandb_group(cfg.experiment_name, run_dir)
        self.method = str(getattr(cfg.pruning.method, "value", cfg.pruning.method))
        self._round: ScheduleWandbLogger | None = None

    def _start_run(self, job_type: str, suffix: str, extra: dict[str, Any]) -> Any:
        import wandb

        finish_stray_run()
        config = OmegaConf.to_container(self.cfg, resolve=True, enum_to_str=True)
        assert isinstance(config, dict)
        return wandb.init(
            project=self.cfg.logger.project,
            entity=self.cfg.logger.entity,
            group=self.group,
            job_type=job_type,
            name=f"{self.group.replace('/', '-')}-{suffix}",
            config={**config, **extra},
            mode=self.mode,
            dir=str(self.run_dir),  # W&B's files live inside the run folder
            # quiet: no banner, run summary or sync hint per run; the run prints the sync command once
            settings=wandb.Settings(silent=not self.cfg.logger.verbose),
        )

    def round_logger(self, index: int, info: dict[str, Any]) -> Logger | list[Logger]:
        csv = super().round_logger(index, info)
        if rank_zero_only.rank != 0:
            return csv  # only rank 0 has a W&B run
        run = self._start_run(self.method, f"round{index:02d}", info)
        run.define_metric("trainer/global_step")
        run.define_metric("*", step_metric="trainer/global_step", step_sync=True)
        self._round = ScheduleWandbLogger(experiment=run)
        return [csv, self._round]

    @rank_zero_only
    def end_round(self, index: int, metrics: dict[str, Any], ticket_dir: Path) -> None:
        """The round's evaluation, grid and ticket artifact go into its run, which is then closed."""
        import wandb

        assert self._round is not None, "end_round without round_logger"
        run = self._round.experiment
        values: dict[str, Any] = {f"eval/{k}": v for k, v in scalars(metrics).items() if k != "round"}
        grid = ticket_dir / GRID_FILE
        if self.cfg.logger.log_grid and grid.is_file():
            values["grid"] = wandb.Image(str(grid), caption="content | style | output")
        run.log(values)
        if self.cfg.logger.log_artifacts:
            name = re.sub(r"[^A-Za-z0-9_.-]", "-", f"ticket-{self.group}-round{index:02d}")
            artifact = wandb.Artifact(name, type="ticket", metadata={"round": index, **scalars(metrics)})
            for file in TICKET_FILES:
                # immutable: referenced in place instead of copied into W&B's staging folder (tickets never change)
                artifact.add_file(str(ticket_dir / file), policy="immutable")
            run.log_artifact(artifact)
        run.finish()
        self._round = None

    @rank_zero_only
    @rank_zero_only
    def log_analysis(self, name: str, records: Sequence[dict[str, Any]]) -> None:
        """An analysis (an instability branch) is one run of its own ``job_type`` in the group: its numbers per
        round on a ``round`` axis (e.g. ``instability/barrier``) and every record, lists included, as a table."""
        import wandb

        run = self._start_run(name, name, {"method": name})
        run.define_metric("round")
        run.define_metric(f"{name}/*", step_metric="round")
        for record in records:
            run.log({"round": record["round"], **{f"{name}/{k}": v for k, v in scalars(record).items() if k != "round"}})
        columns = sorted({key for record in records for key in record})
        data = [[json.dumps(record.get(key)) if isinstance(record.get(key), list) else record.get(key) for key in columns]
                for record in records]  # fmt: skip
        with data_dir(self.run_dir / WANDB_DIR):
            run.log({f"{name}/records": wandb.Table(columns=columns, data=data)})
        run.finish()

    def finish(self, rows: Sequence[dict[str, Any]], verdict: Verdict) -> None:
        """A ``summary`` run in the group: the table of rounds, the per-round curves and the verdict."""
        import wandb

        run = self._start_run("summary", "summary", {"method": self.method})
        run.define_metric("round")
        run.define_metric("by_round/*", step_metric="round")
        for row in rows:
            run.log({"round": row["round"], **{f"by_round/{k}": v for k, v in scalars(row).items() if k != "round"}})
        fields = summary_fields()
        table = wandb.Table(columns=list(fields), data=[[row.get(k) for k in fields] for row in rows])
        with data_dir(self.run_dir / WANDB_DIR):
            run.log({"rounds": table})
        run.summary.update({k: v for k, v in asdict(verdict).items() if not isinstance(v, list)})
        run.finish()


    def sync_command(self) -> str | None:
        """``wandb sync`` of this run's offline W&B runs, its branches' included, when W&B ran offline."""
        if self.mode != "offline":
            return None
        folders = [self.run_dir / WANDB_DIR]
        if self.cfg.pruning.branches:
            folders.append(branch_dir(self.run_dir, "*") / WANDB_DIR)
        return "wandb sync " + " ".join(f"{folder}/offline-run-*" for folder in folders)


LOGGERS: dict[str, type[RunLogger]] = {"csv": RunLogger, "wandb": WandbRunLogger}


def build_run_logger(cfg: DictConfig, run_dir: Path) -> RunLogger:
    name = cfg.logger.name
    if name not in LOGGERS:
        raise ValueError(f"logger.name={name!r} is unknown: expected one of {sorted(LOGGERS)}")
    return LOGGERS[name](cfg, run_dir)
