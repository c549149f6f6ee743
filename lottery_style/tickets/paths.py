"""Every file and folder name of a run folder, defined once (as open_lth's ``foundations/paths.py``).

A run folder::

    <run>/
      run_config.yaml      the config the run started with, checked on resume (lottery_style.engine.resume)
      rewind_point.safetensors  the weights every ticket restarts from (step 0, or step k of round 0)
      summary.csv          one row per finished round: sparsity, E terms, the verdict
      summary.json         the same rows and the verdict
      round_03/
        ticket.safetensors the trained weights with the masks of the pruned scope: survivors + packed mask
                           bits, the rest raw (the ticket file format, lottery_style.tickets.export)
        metrics.json       sparsity (total, per part, per layer), E_content, E_style, E, SSIM, per-pair E
        config.yaml        the resolved run config
        grid.png           content | style | output for the fixed pairs
        DONE               written last: a round without it is unfinished and is resumed
        logs/              the round's CSV metrics (logs/metrics.csv)
        checkpoints/       resumable checkpoints while the round trains, deleted once it is DONE
        early_bird.json    (round 0 of an early-bird run) the watch's mask distances and draws
        evaluations/<name>/  `lottery-style evaluate --name <name>`: metrics.json (per-pair values, the
                           pairs and settings) and grid.png on another set of pairs; metrics.json last
      branches/<method>/   a branch (a control, an analysis) run inside the IMP job: a run folder of its own
      wandb/               W&B's files when logger=wandb

Older folders hold ``ticket.lst`` and ``rewind_point.lst`` (the same content in
the layout before safetensors) or, before that, ``weights.pt`` + ``mask.pt``
and ``rewind_point.pt``; :mod:`lottery_style.tickets.storage` reads them all.
Nothing here reads or writes a file: these are names, and functions that join them.
"""

from __future__ import annotations

from pathlib import Path

# ------------------------------------------------------------- a round folder
DONE = "DONE"
TICKET_FILE = "ticket.safetensors"  # a round's weights and masks in one file (lottery_style.tickets.storage)
LST_TICKET_FILE = "ticket.lst"  # the same, in the layout before safetensors (read, never written)
METRICS_FILE = "metrics.json"
ROUND_CONFIG = "config.yaml"  # the resolved config a round was trained with
GRID_FILE = "grid.png"
LOGS_DIR = "logs"
CHECKPOINTS_DIR = "checkpoints"
LAST_CHECKPOINT = "last.ckpt"
LEGACY_WEIGHTS_FILE = "weights.pt"  # dense torch.save of the weights, before the ticket file
LEGACY_MASKS_FILE = "mask.pt"  # bool masks, one byte per entry, before the ticket file
EARLY_BIRD_RECORD = "early_bird.pt"  # the early-bird watch's state in round 0, for a resume
EARLY_BIRD_SUMMARY = "early_bird.json"  # its mask distances and draws, read by the report
# Files of a round folder that belong to the run that trained it, not to a branch reusing the round.
OWN_ROUND_FILES = (METRICS_FILE, ROUND_CONFIG, DONE, LOGS_DIR, CHECKPOINTS_DIR)
EVALUATIONS_DIR = "evaluations"  # a round's evaluations after training, one folder per name (evaluation_dir)

# --------------------------------------------------------------- a run folder
ROUND_GLOB = "round_*"  # every round folder of a run (round_dir's names)
REWIND_FILE = "rewind_point.safetensors"  # the run's rewind point, same format as a ticket, no masks
LST_REWIND_FILE = "rewind_point.lst"  # the same, in the layout before safetensors (read, never written)
LEGACY_REWIND_FILE = "rewind_point.pt"
RUN_CONFIG = "run_config.yaml"
SUMMARY_CSV = "summary.csv"
SUMMARY_JSON = "summary.json"
BRANCHES_DIR = "branches"  # pruning.branches: <run>/branches/<method>/, each a run folder of its own
WANDB_DIR = "wandb"
HYDRA_JOB_CONFIG = "config.yaml"  # Hydra's saved job config, <job>/.hydra/config.yaml (a multirun job's folder)
HYDRA_RECORD_FILES = frozenset({HYDRA_JOB_CONFIG, "hydra.yaml", "overrides.yaml"})  # all Hydra saves in <job>/.hydra/
MULTIRUN_RECORD = "multirun.yaml"  # Hydra's record of a sweep, in the sweep folder

# ------------------------------------------------ an instability branch folder
INSTABILITY_SUMMARY = "instability.json"  # every analysed mask's record
COPIES_DIR = "copies"  # the two trained copies per mask, each a folder holding its weights
COPY_WEIGHTS = "weights.pt"  # a trained copy's weights, kept for a resume

# ------------------------------------------------------------------ a report
REPORT_DIR = "report"  # <sweep>/report/ when a sweep writes its report (tools.report_callback)
REPORT_HTML = "report.html"
REPORT_JSON = "report.json"


def round_dir(run_dir: str | Path, round_index: int) -> Path:
    return Path(run_dir) / f"round_{round_index:02d}"


def evaluation_dir(ticket_dir: str | Path, name: str) -> Path:
    """Where ``lottery-style evaluate --name <name>`` writes a round's metrics and grid."""
    return Path(ticket_dir) / EVALUATIONS_DIR / name


def branch_dir(run_dir: str | Path, method: str) -> Path:
    """Where ``pruning.branches`` runs ``method`` inside an IMP run's folder."""
    return Path(run_dir) / BRANCHES_DIR / method


def checkpoint_dir(ticket_dir: Path, start: int) -> Path:
    """The checkpoints of one fit of a round, the fit starting at step ``start`` (lottery_style.engine.rewinding)."""
    return ticket_dir / CHECKPOINTS_DIR / f"from_step_{start}"


def path_record(analysis_dir: Path, round_index: int) -> Path:
    """An instability branch's record of one round's mask: E along the path between its two copies."""
    return analysis_dir / f"path_{round_index:02d}.json"


def copy_dir(analysis_dir: Path, round_index: int, copy: str) -> Path:
    """One trained copy (``a`` or ``b``) of round ``round_index``'s mask in an instability branch."""
    return analysis_dir / COPIES_DIR / f"r{round_index:02d}-{copy}"
