"""Instability analysis (Frankle et al. 2020, "Linear mode connectivity and the lottery ticket hypothesis").

IMP finds matching tickets exactly when the network is stable to SGD noise
from the rewind point: two copies trained from it on different data orders end
in one linearly connected minimum. For the dense network (all-ones mask) and
each round's IMP mask, two copies start from the same rewind point θk under
the same mask and train k..T with the same LR schedule and per-step random
numbers, copy a on the run's training stream and copy b on another stream
(``pruning.instability.stream_seed``); the test error E is then measured at
``points`` evenly spaced points of the straight line between their weights
(pruned entries are zero at both ends, so on the whole path), and the barrier
is the highest E on the path minus the mean of the endpoints' E. A run rewound
to step k gives the barriers at k; a sweep over ``pruning.rewind_step`` gives
barrier vs k (the report draws both).

It is an analysis, not a mask method: it runs as a branch of an IMP run
(``pruning.branches=[instability]``), in ``<run>/branches/instability/``, one
``path_XX.json`` per round, and resumes copy by copy.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from lottery_style.core.atomic import atomic_torch_save, atomic_write_json, load_tensors
from lottery_style.core.config import stream_seed
from lottery_style.data.datamodule import StylePairDataModule
from lottery_style.engine.evaluation import evaluate
from lottery_style.engine.granularity import masked_parameters
from lottery_style.engine.loggers import ScheduleCSVLogger
from lottery_style.engine.ranks import barrier as wait_for_ranks
from lottery_style.engine.ranks import is_rank_zero
from lottery_style.engine.rewinding import Segment
from lottery_style.pruning.callback import MaskCallback, trainable_state
from lottery_style.pruning.masks import apply_masks
from lottery_style.tickets.paths import (
    CHECKPOINTS_DIR,
    COPY_WEIGHTS,
    INSTABILITY_SUMMARY,
    copy_dir,
    path_record,
    round_dir,
)
from lottery_style.tickets.storage import load_rewind_point, load_round_masks

if TYPE_CHECKING:
    from lottery_style.engine.lottery import LotteryRun


def interpolate(a: dict[str, Tensor], b: dict[str, Tensor], alpha: float) -> dict[str, Tensor]:
    """(1 - alpha) a + alpha b for floating tensors (``torch.lerp``: exactly a at 0 and b at 1); others from a."""
    return {k: torch.lerp(v, b[k], alpha) if v.is_floating_point() else v for k, v in a.items()}


def barrier(path_errors: list[float]) -> float:
    """The error barrier of Frankle et al. (2020): max E on the path minus the mean of the endpoints' E."""
    return max(path_errors) - (path_errors[0] + path_errors[-1]) / 2


def copy_streams(run: LotteryRun) -> tuple[int, int]:
    """The two copies' training streams: the run's own, and ``pruning.instability.stream_seed`` (else own + 1)."""
    own = stream_seed(run.cfg)
    other = run.cfg.pruning.instability.stream_seed
    return own, own + 1 if other is None else int(other)


def train_copy(run: LotteryRun, masks: dict[str, Tensor], stream: int, folder: Path) -> dict[str, Tensor]:
    """One copy: the rewind point under ``masks``, trained k..T on ``stream``; its weights are kept for a resume."""
    weights_file = folder / COPY_WEIGHTS
    if weights_file.is_file():
        return load_tensors(weights_file)
    cfg, k = run.cfg, int(run.cfg.pruning.rewind_step)
    model, _ = run.build()
    model.load_state_dict(load_rewind_point(run.source), strict=False)
    apply_masks(masked_parameters(model, masks), masks)
    datamodule = StylePairDataModule(cfg.data, steps_per_epoch=cfg.training.steps, stream_seed=stream)
    logger = ScheduleCSVLogger(folder)
    run.fit_segment(model, datamodule, 1, Segment(k, int(cfg.training.steps), k), MaskCallback(masks), folder, logger)
    weights = trainable_state(model)
    atomic_torch_save(weights, weights_file)
    shutil.rmtree(folder / CHECKPOINTS_DIR, ignore_errors=True)
    return weights


def analyse_round(run: LotteryRun, index: int) -> dict[str, Any]:
    """The dense network (round 0) or round ``index``'s IMP mask: two copies, E along their path, the barrier."""
    model, datamodule = run.build()
    pruner = run.pruner_for(model)
    masks = pruner.dense(run.scope_weights(model)) if index == 0 else load_round_masks(round_dir(run.source, index))
    streams = copy_streams(run)
    ends = [train_copy(run, masks, s, copy_dir(run.run_dir, index, c)) for c, s in zip("ab", streams)]
    datamodule.setup("test")
    points = int(run.cfg.pruning.instability.points)
    alphas = [i / (points - 1) for i in range(points)]
    errors = []
    for alpha in alphas:
        model.load_state_dict(interpolate(ends[0], ends[1], alpha), strict=False)
        errors.append(evaluate(model, datamodule.test_dataloader(), run.device)["E"])
    return {"round": index, "sparsity": pruner.sparsity(masks), "rewind_step": int(run.cfg.pruning.rewind_step),
            "streams": list(streams), "alphas": alphas, "E": errors, "barrier": barrier(errors)}  # fmt: skip


def analyse(run: LotteryRun) -> dict[str, Any]:
    """Every round of the followed IMP run, round 0 (dense) included; finished rounds are read back."""
    run.run_dir.mkdir(parents=True, exist_ok=True)
    records = []
    for index in range(len(run.sparsities)):
        path = path_record(run.run_dir, index)
        record = json.loads(path.read_text()) if path.is_file() else analyse_round(run, index)
        if is_rank_zero():
            atomic_write_json(path, record)
        records.append(record)
    if is_rank_zero():
        atomic_write_json(run.run_dir / INSTABILITY_SUMMARY, records)
    wait_for_ranks()
    return {"instability": records}

