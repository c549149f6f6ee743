"""``lottery-style evaluate``: every finished round of stored runs judged afterwards on another set of pairs.

A ticket is judged during training on the pairs its run chose (``data.eval_*``).
This tool judges every finished round of every run found under the given folders
(their branches too) on the fixed pairs of two other folders - the paper's test
set, say - with every test error the models have (:meth:`StyleTransferModule.test_errors`),
per pair, without retraining. Each round's results go to
``round_XX/evaluations/<name>/`` (:func:`lottery_style.tickets.paths.evaluation_dir`):
``grid.png`` first, then ``metrics.json`` (the training-time record's fields, each
test error per pair, and the evaluation's settings and pairs), so a round whose
``metrics.json`` exists is evaluated and skipped when the command is rerun: an
interrupted evaluation resumes. The training-time ``metrics.json`` is never touched.

The pairs are chosen exactly as training chooses them
(:func:`lottery_style.data.pairs.choose_eval_pairs`), and each round's model is built
as its training built it (:func:`lottery_style.engine.evaluation.seeded_model`) with
the round's weights loaded, so evaluating a run on the folders, counts, size and seed it
was trained with reproduces its recorded per-pair E (on the same device and threads).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from torch.utils.data import DataLoader

from lottery_style.core.atomic import atomic_write_json
from lottery_style.core.config import PARTS
from lottery_style.data.images import list_images
from lottery_style.data.pairs import EvalPairs, EvalSpec, choose_eval_pairs, pair_names
from lottery_style.engine.evaluation import per_pair_errors, save_grid, seeded_model, summarise
from lottery_style.engine.speed import to_channels_last
from lottery_style.models.base import StyleTransferModule
from lottery_style.tickets.paths import GRID_FILE, METRICS_FILE, ROUND_CONFIG, evaluation_dir
from lottery_style.tickets.storage import finished_rounds, load_round, read_metrics
from lottery_style.tools.report import ReportError, find_run_dirs

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")  # one folder name, nothing that climbs out of evaluations/
EVALUATION = "evaluation"  # the key of an evaluation's settings and pairs in its metrics.json
# The training-time fields an evaluation's record keeps: which round, and how sparse it is.
ROUND_FIELDS = ("round", "method", "sparsity", "sparsity_model", *(f"sparsity_{part}" for part in PARTS), "weight_source")


class EvaluationError(ValueError):
    """A name, a folder or a run the evaluation cannot use; the one-line message names it."""


@dataclass(frozen=True)
class EvaluationSet:
    """The fixed pairs of one evaluation and the record that identifies them (folders, spec, every pair)."""

    name: str
    pairs: EvalPairs
    record: dict[str, Any]


def check_name(name: str) -> str:
    if not NAME.fullmatch(name):
        raise EvaluationError(
            f"--name {name!r} is not a folder name: expected letters, digits, '_', '-' or '.', starting with a letter or digit"
        )
    return name


def check_spec(spec: EvalSpec) -> None:
    for option in ("contents", "styles", "size", "crops"):
        if getattr(spec, option) < 1:
            raise EvaluationError(f"--{option} {getattr(spec, option)} is invalid: expected a count of at least 1")
    if spec.load_size is not None and spec.load_size < spec.size:
        raise EvaluationError(f"--load-size {spec.load_size} is smaller than --size {spec.size}: expected the crops to fit")


def evaluation_set(name: str, content_dir: str | Path, style_dir: str | Path, spec: EvalSpec) -> EvaluationSet:
    """The pairs of ``spec`` from the two folders (resolved, so the record names the files wherever it is read)."""
    check_name(name)
    check_spec(spec)
    pools = {
        role: (f"{role} folder {folder}", list_images(Path(folder).expanduser().resolve(), role))
        for role, folder in (("content", content_dir), ("style", style_dir))
    }
    content_files, style_files, pairs = choose_eval_pairs(spec, pools)
    record = {
        "name": name,
        "content_dir": str(Path(content_dir).expanduser().resolve()),
        "style_dir": str(Path(style_dir).expanduser().resolve()),
        **asdict(spec),
        "pairs": [list(pair) for pair in pair_names(content_files, style_files, pairs)],
    }
    return EvaluationSet(name, pairs, record)


def evaluated(ticket_dir: Path, evaluation: EvaluationSet) -> bool:
    """Whether the round holds this evaluation already; a record of another evaluation under the name is an error."""
    path = evaluation_dir(ticket_dir, evaluation.name) / METRICS_FILE
    if not path.is_file():
        return False
    if read_metrics(path.parent).get(EVALUATION) != evaluation.record:
        raise EvaluationError(
            f"{path.parent} holds an evaluation named {evaluation.name!r} on other pairs or settings: "
            "expected another --name for these"
        )
    return True


def rounds_of(paths: Sequence[str | Path]) -> list[Path]:
    """Every finished round of every run under ``paths`` (branches included); a run without one is an error."""
    try:
        runs = find_run_dirs(paths)
    except ReportError as error:
        raise EvaluationError(str(error)) from None
    rounds = []
    for run in runs:
        found = finished_rounds(run)
        if not found:
            raise EvaluationError(f"run {run} has no finished round: expected a round_XX folder with a DONE marker")
        rounds += found
    return rounds


def round_models(rounds: Sequence[Path]) -> Iterator[tuple[Path, StyleTransferModule]]:
    """Each round with its model: built once per run as its training built it and left it (in its memory format),
    the round's weights loaded."""
    model, built_for = None, None
    for ticket_dir in rounds:
        if model is None or built_for != ticket_dir.parent:
            cfg = OmegaConf.load(ticket_dir / ROUND_CONFIG)
            model, built_for = seeded_model(cfg), ticket_dir.parent
            to_channels_last(model, bool(OmegaConf.select(cfg, "training.channels_last", default=False)))
        weights, _ = load_round(ticket_dir)
        model.load_state_dict(weights, strict=False)  # every encoder/transform/decoder tensor: no earlier round's left
        yield ticket_dir, model


def evaluate_round(
    model: StyleTransferModule, ticket_dir: Path, evaluation: EvaluationSet, batch_size: int, grid_pairs: int,
    device: torch.device,
) -> Path:  # fmt: skip
    """Write the round's grid and then its metrics (every test error per pair, the mean of each) atomically."""
    folder = evaluation_dir(ticket_dir, evaluation.name)
    folder.mkdir(parents=True, exist_ok=True)
    save_grid(model, evaluation.pairs.first(grid_pairs), folder / GRID_FILE, device)
    values = per_pair_errors(model, DataLoader(evaluation.pairs, batch_size=batch_size, shuffle=False), device)
    trained = read_metrics(ticket_dir)
    metrics = {
        **{key: trained[key] for key in ROUND_FIELDS if key in trained},
        **summarise(values),
        **{f"per_pair_{key}": [float(v) for v in value] for key, value in values.items()},
        EVALUATION: evaluation.record,
    }
    return atomic_write_json(folder / METRICS_FILE, metrics)


@dataclass(frozen=True)
class EvaluationResult:
    evaluated: int
    skipped: int  # evaluated before (a resumed evaluation)


def evaluate_runs(
    paths: Sequence[str | Path], evaluation: EvaluationSet, batch_size: int = 8, grid_pairs: int = 4,
    device: torch.device | None = None, progress: bool = True,
) -> EvaluationResult:  # fmt: skip
    """Evaluate every finished round under ``paths`` not yet evaluated under ``evaluation.name``."""
    if batch_size < 1 or grid_pairs < 1:
        raise EvaluationError(f"--batch-size {batch_size} and --grid-pairs {grid_pairs} must both be at least 1")
    rounds = rounds_of(paths)
    todo = [ticket_dir for ticket_dir in rounds if not evaluated(ticket_dir, evaluation)]
    columns = (TextColumn(f"evaluate {evaluation.name}"), BarColumn(), MofNCompleteColumn(), TextColumn("rounds"),
               TimeRemainingColumn())  # fmt: skip
    with Progress(*columns, disable=not progress) as bar:
        job = bar.add_task("rounds", total=len(todo))
        for ticket_dir, model in round_models(todo):
            evaluate_round(model, ticket_dir, evaluation, batch_size, grid_pairs, device or torch.device("cpu"))
            bar.update(job, advance=1)
    return EvaluationResult(len(todo), len(rounds) - len(todo))
