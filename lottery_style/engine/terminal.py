"""What a run prints on the terminal: its answer, not the libraries' chatter.

By default (``logger.verbose=false``) a run shows the progress bar, one line
per finished round, the table of rounds, the summary's path and, when W&B ran
offline, the command that uploads it. W&B's banners and per-run summaries,
Lightning's rank-zero info lines (device lines, "Seed set to", its logger
advertising, the model summary) and the libraries' deprecation notices would
otherwise bury that answer under ~40 lines per round. The project's own INFO
log lines still reach the run's log file (Hydra's file handler); only the
console handlers are raised to WARNING. ``logger.verbose=true`` leaves every
library as it is.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

# Loggers of Lightning's rank-zero info lines ("GPU available", "Seed set to", the litlogger tip).
LIBRARY_LOGGERS = ("lightning.pytorch", "lightning.fabric")


def quiet_terminal(verbose: bool) -> None:
    """Silence library chatter on the console for this process, unless ``verbose``.

    Warnings and errors still show: only INFO-level lines and the libraries'
    FutureWarning/DeprecationWarning notices (which a user of the framework cannot act on) are held back.
    """
    if verbose:
        return
    for name in LIBRARY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    for handler in logging.getLogger().handlers:  # Hydra's console handler; its file handler keeps INFO
        if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler):
            handler.setLevel(logging.WARNING)
    for category in (FutureWarning, DeprecationWarning):
        warnings.filterwarnings("ignore", category=category, module=r"(lightning|torch|wandb)(\.|$)")


def round_line(
    metrics: dict[str, Any], last_round: int, dense_E: float, matching: bool, seconds: float | None, label: str = ""
) -> str:
    """One line for a finished round: round, sparsity, E, matching vs the dense round, its wall-clock time.

    ``seconds`` is None for a round finished by an earlier invocation (a resume) or taken from the source run.
    """
    index = int(metrics["round"])
    head = f"{f'[{label}] ' if label else ''}round {index}/{last_round}"
    error = f"E {float(metrics['E']):.5g}"
    if index == 0:
        verdict = f"dense  {error}"
    else:
        sparsity = f"sparsity {100 * float(metrics['sparsity']):.1f}%"
        verdict = f"{sparsity}  {error}  {'matching' if matching else 'not matching'} (dense E {dense_E:.5g})"
    took = "done before" if seconds is None else f"{seconds:.1f} s"
    return f"{head}  {verdict}  {took}"


def table_heading(label: str, run_dir: Any) -> str:
    """The line above a branch's table, so that it cannot be taken for the IMP run's own."""
    return f"[{label}] branch of this run, in {run_dir}:"
