"""Early-bird tickets (You et al. 2020, "Drawing early-bird tickets: towards more efficient training of deep networks").

The dense round 0 is watched (:mod:`lottery_style.pruning.early_bird_watch`):
every ``pruning.early_bird.every`` steps (default ``training.checkpoint_every``)
the global magnitude mask at each target sparsity of the schedule, and its
normalised Hamming distance to the previous one. A target's ticket is drawn at
the first step where the last ``window`` distances are all below
``threshold``; without a draw, the mask at the end of round 0 stands in (the
one-shot magnitude mask) and the record says so. Round r then trains its
target's ticket from the rewind point like an IMP round. Round 0 still trains
to the end, because the ticket must be judged against the dense model; the
cost You et al. save is recorded instead: the draw step plus the ticket's own
training, against IMP's full rounds (see the report). Ties in the magnitude
ranking are broken in the order of positions the control seed draws.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lightning.pytorch import Callback
from omegaconf import DictConfig

from lottery_style.core.config import Range, control_seed, option
from lottery_style.engine.methods.base import MethodStrategy, RoundInputs, register_method
from lottery_style.pruning.early_bird import EarlyBird
from lottery_style.pruning.early_bird_watch import EarlyBirdWatch, load_trackers
from lottery_style.pruning.masks import Masks
from lottery_style.pruning.pruner import Pruner
from lottery_style.tickets.paths import round_dir


@dataclass
class EarlyBirdOptions:
    """``pruning=early_bird`` (You et al. 2020): when the dense round 0's magnitude mask stops changing."""

    threshold: float = option(
        0.1, help="a ticket is drawn once the mask distance stays below this (the paper's epsilon)",
        valid=Range(low=0, high=1, low_open=True),
    )
    window: int = option(
        5, help="consecutive mask distances that must be below threshold (the paper's FIFO of 5)", valid=Range(low=1)
    )
    every: int | None = option(
        None, help="steps between the watched masks; null: training.checkpoint_every", valid=Range(low=1)
    )


@register_method("early_bird", options=EarlyBirdOptions)
class EarlyBirdTicket(MethodStrategy):
    weight_rewinding_only = True

    def round_zero_callbacks(
        self, cfg: DictConfig, targets: list[float], names: list[str], ticket_dir: Path, pruner: Pruner
    ) -> list[Callback]:
        options, steps = cfg.pruning.early_bird, int(cfg.training.steps)
        trackers = [EarlyBird(target, float(options.threshold), int(options.window)) for target in targets]
        costs = {"round_zero_steps": steps, "ticket_steps": steps - int(cfg.pruning.rewind_step)}
        every = int(options.every or cfg.training.checkpoint_every)
        layerwise = bool(cfg.pruning.layerwise)
        return [EarlyBirdWatch(trackers, names, every, layerwise, ticket_dir, costs, tie_seed=control_seed(cfg), pruner=pruner)]

    def next_masks(self, inputs: RoundInputs) -> Masks:
        assert inputs.run_dir is not None, "early_bird reads its round 0's record"
        trackers = load_trackers(round_dir(inputs.run_dir, 0))
        return min(trackers, key=lambda tracker: abs(tracker.target - inputs.target)).ticket()
