"""What a round costs besides its training steps, at the quickstart's settings.

Usage: python bench/round_overhead.py [--rounds 1] [--threads N] [overrides ...]

Runs the quickstart (``lottery-style`` defaults: AdaIN+, IMP, sample images,
64 px crops, 60 steps per round, W&B offline) in a temporary folder with
``pruning.rounds`` lowered to ``--rounds`` (round 0 plus that many pruned
rounds), and times every phase of every round by wrapping the driver's
functions here, in the bench (the package is not changed to be measured):

- ``steps``: first training batch start to last batch end, minus checkpoint saving;
- ``checkpoints``: ``Trainer.save_checkpoint`` calls (every ``training.checkpoint_every`` steps);
- ``fit setup/teardown``: the rest of ``Trainer.fit`` (strategy and loop setup, data loader, teardown);
- ``trainer``: building the Trainer; ``logger start``/``logger end``: the round's W&B run
  (init; evaluation values, grid, ticket artifact, finish);
- ``pruning``: the method's masks and starting weights (``start_round``);
- ``evaluation``: the test error on the fixed pairs, reported on its own;
- ``grid``, ``ticket``: writing the grid PNG and the round's files;
- ``other``: the rest of the round's wall time.

Overhead = round wall time - steps - evaluation; its share is printed against the
round's wall time without evaluation. The model and VGG are built once per run,
before round 0 (printed as ``run setup``), and the W&B summary run after the last.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch

from lottery_style.engine import lottery
from lottery_style.engine.compose import compose
from lottery_style.engine.loggers import LOGGERS

PHASES = ("steps", "checkpoints", "fit setup/teardown", "trainer", "logger start", "logger end", "pruning",
          "evaluation", "grid", "ticket", "other")  # fmt: skip


class Timer:
    """Seconds per (round, phase); ``current`` is the round being timed."""

    def __init__(self) -> None:
        self.seconds: dict[int, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        self.current = -1
        self.run_setup = 0.0
        self.summary = 0.0

    def wrap(self, owner: Any, name: str, phase: str) -> None:
        original: Callable[..., Any] = getattr(owner, name)

        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.seconds[self.current][phase] += time.perf_counter() - start

        setattr(owner, name, timed)


class StepWindow(pl.Callback):
    """First batch start to last batch end of a fit: the steps (and the checkpoints saved between them)."""

    def __init__(self, timer: Timer) -> None:
        self.timer, self.start, self.end = timer, 0.0, 0.0

    def on_train_batch_start(self, trainer: pl.Trainer, *args: Any) -> None:
        if not self.start:
            self.start = time.perf_counter()

    def on_train_batch_end(self, trainer: pl.Trainer, *args: Any) -> None:
        self.end = time.perf_counter()


def instrument(timer: Timer) -> None:
    run = lottery.LotteryRun
    original_fit_round, original_start_round, original_fit = run.fit_round, run.start_round, pl.Trainer.fit

    def start_round(self: Any, model: Any, index: int, *args: Any) -> Any:
        timer.current = index
        self._round_start = time.perf_counter()
        start = time.perf_counter()
        masks = original_start_round(self, model, index, *args)
        timer.seconds[index]["pruning"] += time.perf_counter() - start
        return masks

    def fit_round(self: Any, model: Any, datamodule: Any, index: int, *args: Any) -> Any:
        metrics = original_fit_round(self, model, datamodule, index, *args)
        timer.seconds[index]["wall"] = time.perf_counter() - self._round_start
        return metrics

    def fit(trainer: pl.Trainer, *args: Any, **kwargs: Any) -> Any:
        window = StepWindow(timer)
        trainer.callbacks.append(window)
        start = time.perf_counter()
        checkpoints_before = timer.seconds[timer.current]["checkpoints"]
        result = original_fit(trainer, *args, **kwargs)
        total = time.perf_counter() - start
        checkpoints = timer.seconds[timer.current]["checkpoints"] - checkpoints_before
        steps = window.end - window.start
        timer.seconds[timer.current]["steps"] += steps - checkpoints
        timer.seconds[timer.current]["fit setup/teardown"] += total - steps
        return result

    run.start_round, run.fit_round, pl.Trainer.fit = start_round, fit_round, fit
    timer.wrap(pl.Trainer, "save_checkpoint", "checkpoints")
    timer.wrap(run, "build", "run setup")
    timer.wrap(run, "summarise", "summary")
    timer.wrap(run, "build_trainer", "trainer")
    timer.wrap(lottery, "evaluate", "evaluation")
    timer.wrap(lottery, "save_grid", "grid")
    timer.wrap(lottery, "save_round", "ticket")
    timer.wrap(lottery, "save_rewind_point", "ticket")
    for logger_class in set(LOGGERS.values()):
        timer.wrap(logger_class, "round_logger", "logger start")
        timer.wrap(logger_class, "end_round", "logger end")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=1, help="pruned rounds after round 0")
    parser.add_argument("--threads", type=int, default=None, help="torch compute threads (default: torch's)")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides (default: the quickstart)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    os.environ.setdefault("WANDB_MODE", "offline")
    os.environ.setdefault("WANDB_SILENT", "true")
    timer = Timer()
    instrument(timer)
    with tempfile.TemporaryDirectory() as tmp:
        overrides = [f"pruning.rounds={args.rounds}", "training.progress_bar=false", *args.overrides]
        cfg = compose(overrides)
        cfg.output_dir = str(Path(tmp) / "run")
        start = time.perf_counter()
        lottery.LotteryRun(cfg, cfg.output_dir).run()
        total = time.perf_counter() - start
    last = max(timer.seconds)
    print(f"\nrun setup (model, VGG, data; once per run) {timer.seconds[-1]['run setup']:.2f} s, "
          f"W&B summary run after the last round {timer.seconds[last]['summary']:.2f} s")  # fmt: skip
    print(f"{' '.join(sys.argv[1:]) or 'quickstart'}: {total:.1f} s in all; load average {os.getloadavg()[0]:.1f}")
    print(f"{'round':>5} {'wall s':>7} " + " ".join(f"{p[:12]:>12}" for p in PHASES) + f" {'overhead':>9} {'share':>6}")
    for index, phases in sorted(timer.seconds.items()):
        if index < 0 or "wall" not in phases:
            continue
        phases["other"] = phases["wall"] - sum(phases[p] for p in PHASES if p != "other")
        overhead = phases["wall"] - phases["steps"] - phases["evaluation"]
        share = overhead / (phases["wall"] - phases["evaluation"])
        print(f"{index:>5} {phases['wall']:>7.2f} " + " ".join(f"{phases[p]:>12.2f}" for p in PHASES)
              + f" {overhead:>9.2f} {share:>6.1%}")  # fmt: skip


if __name__ == "__main__":
    main()
