"""Pruning: mask sets and the rules that make them (no Lightning here)."""

from lottery_style.pruning.masks import (
    Masks,
    apply_masks,
    dense_masks,
    kept_counts,
    magnitude_prune,
    overall_sparsity,
    random_prune_global,
    random_prune_like,
    score_prune,
    shuffle_within_layers,
    sparsity_report,
    sparsity_schedule,
)

__all__ = [
    "Masks",
    "apply_masks",
    "dense_masks",
    "kept_counts",
    "magnitude_prune",
    "overall_sparsity",
    "random_prune_global",
    "random_prune_like",
    "score_prune",
    "shuffle_within_layers",
    "sparsity_report",
    "sparsity_schedule",
]
