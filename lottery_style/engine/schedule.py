"""A run's rounds: the target sparsity of each, round 0 (dense) included.

Needed both by the config check (before anything is built) and by the driver,
so it sits below both.
"""

from __future__ import annotations

from omegaconf import DictConfig

from lottery_style.engine.methods import method_strategy
from lottery_style.pruning.masks import sparsity_schedule


def round_sparsities(cfg: DictConfig) -> list[float]:
    """Target sparsity of every round, round 0 (dense) included."""
    pruning = cfg.pruning
    if not method_strategy(str(pruning.method)).prunes:
        return [0.0]
    explicit = list(pruning.sparsities) if pruning.sparsities is not None else None
    return [0.0, *sparsity_schedule(pruning.rate, pruning.rounds, pruning.target_sparsity, explicit)]
