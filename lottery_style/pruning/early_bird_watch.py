"""The Lightning side of early-bird tickets: watch the dense round 0 and keep its record.

Every ``every`` steps of round 0 (counted along the whole round, across the
split at a rewind step) the watch ranks the scope's weights by magnitude at
each target sparsity of the schedule and feeds each :class:`EarlyBird`. The
trackers travel in Lightning checkpoints, so a resumed round 0 continues its
record. Ties in the ranking are broken in one fixed order of positions
(``tie_seed``'s) at every step, so that a tie that does not move adds nothing
to the distance; at the end of every fit rank 0 writes ``early_bird.pt`` (the masks)
and ``early_bird.json`` (distances, draw steps, the cost in steps) into the
round folder, where the method and the report read them.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer

from lottery_style.core.atomic import atomic_torch_save, atomic_write_json, load_tensors
from lottery_style.pruning.early_bird import EarlyBird
from lottery_style.pruning.pruner import Pruner
from lottery_style.tickets.paths import EARLY_BIRD_RECORD, EARLY_BIRD_SUMMARY


class EarlyBirdWatch(Callback):
    def __init__(self, trackers: list[EarlyBird], names: list[str], every: int, layerwise: bool, ticket_dir: Path,
                 costs: dict[str, int], tie_seed: int, pruner: Pruner | None = None):  # fmt: skip
        self.trackers = trackers
        self.names = names
        self.every = every
        self.layerwise = layerwise
        self.ticket_dir = ticket_dir
        self.costs = costs  # round_zero_steps, ticket_steps: for the report's cost comparison
        self.tie_seed = tie_seed
        self.pruner = pruner or Pruner()  # pruning.granularity's unit

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int) -> None:
        step = trainer.datamodule.start_step + trainer.global_step  # the step of round 0 just completed
        if step % self.every:
            return
        params = dict(pl_module.named_parameters())
        scope = {name: params[name].detach() for name in self.names}
        pruner = self.pruner
        for tracker in self.trackers:
            masks = pruner.magnitude(scope, pruner.dense(scope), tracker.target, self.layerwise, tie_seed=self.tie_seed)
            masks = {n: m.cpu() for n, m in masks.items()}
            tracker.observe(step, masks, pruner.units(masks))

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.is_global_zero:
            self.ticket_dir.mkdir(parents=True, exist_ok=True)
            atomic_torch_save([asdict(tracker) for tracker in self.trackers], self.ticket_dir / EARLY_BIRD_RECORD)
            atomic_write_json(self.ticket_dir / EARLY_BIRD_SUMMARY, {**self.costs, "every": self.every,
                                                          "targets": [t.summary() for t in self.trackers]})  # fmt: skip

    def state_dict(self) -> dict[str, Any]:
        return {"trackers": [asdict(tracker) for tracker in self.trackers]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.trackers = [EarlyBird(**tracker) for tracker in state_dict["trackers"]]


def load_trackers(ticket_dir: Path) -> list[EarlyBird]:
    """Round 0's trackers as the watch left them."""
    return [EarlyBird(**tracker) for tracker in load_tensors(ticket_dir / EARLY_BIRD_RECORD)]
