"""Mask logic: exact counts, survivors-only pruning, controls, schedule (files: test_round_io.py)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lottery_style.pruning import (
    apply_masks,
    dense_masks,
    kept_counts,
    magnitude_prune,
    overall_sparsity,
    random_prune_global,
    random_prune_like,
    score_prune,
    sparsity_report,
    sparsity_schedule,
)


def _weights(seed: int = 0) -> dict[str, torch.Tensor]:
    """Layers of different sizes and scales, as in a real network (global and layer-wise ranking then differ)."""
    gen = torch.Generator().manual_seed(seed)
    shapes = {"encoder.body.2.weight": (8, 3, 3, 3), "encoder.body.5.weight": (16, 8, 3, 3),
              "decoder.body.1.weight": (8, 16, 3, 3), "transform.fc.weight": (10, 7)}
    return {name: torch.randn(shape, generator=gen) * (0.5 + i) for i, (name, shape) in enumerate(shapes.items())}


def _pruned(masks: dict[str, torch.Tensor]) -> int:
    return sum(m.numel() for m in masks.values()) - sum(kept_counts(masks).values())


def test_global_pruning_is_exact_over_successive_rounds_and_removes_the_smallest() -> None:
    weights = _weights()
    total = sum(w.numel() for w in weights.values())
    masks = dense_masks(weights)
    for r in range(1, 6):
        target = 1 - 0.8**r
        new = magnitude_prune(weights, masks, target, tie_seed=0)
        assert _pruned(new) == round(target * total)
        assert abs(overall_sparsity(new) - target) <= 1 / total
        pruned_now = torch.cat([weights[n][masks[n] & ~new[n]].abs() for n in new])
        kept = torch.cat([weights[n][new[n]].abs() for n in new])
        assert pruned_now.max() <= kept.min()
        masks = new
    # global ranking spares the large-scale layers: sparsity differs by layer
    layer = sparsity_report(masks, lambda name: name.split(".")[0])["layers"]
    assert layer["encoder.body.2.weight"] > layer["transform.fc.weight"]


def test_layerwise_brings_each_layer_to_the_target() -> None:
    weights = _weights()
    masks = magnitude_prune(weights, dense_masks(weights), 0.2, layerwise=True, tie_seed=0)
    masks = magnitude_prune(weights, masks, 0.55, layerwise=True, tie_seed=0)
    for name, mask in masks.items():
        assert mask.numel() - int(mask.sum()) == round(0.55 * mask.numel()), name
        assert weights[name][~mask].abs().max() <= weights[name][mask].abs().min()


def test_already_pruned_entries_stay_pruned_even_when_their_weights_are_large() -> None:
    weights = _weights()
    masks = magnitude_prune(weights, dense_masks(weights), 0.5, tie_seed=0)
    rewound = {name: torch.where(m, w, torch.full_like(w, 1e6)) for (name, w), m in zip(weights.items(), masks.values())}
    new = magnitude_prune(rewound, masks, 0.6, tie_seed=0)
    for name in masks:
        assert not (new[name] & ~masks[name]).any()
    assert _pruned(new) == round(0.6 * sum(m.numel() for m in masks.values()))


def _half_tied(seed: int = 0) -> dict[str, torch.Tensor]:
    """Scores of layers of very different sizes, half of each layer's entries (at random positions) tied at 0."""
    gen = torch.Generator().manual_seed(seed)
    sizes = {"encoder.a.weight": (40, 50), "encoder.b.weight": (200,), "decoder.c.weight": (64, 32, 3, 3),
             "transform.d.weight": (30, 30)}  # fmt: skip
    scores = {}
    for name, shape in sizes.items():
        values = torch.rand(shape, generator=gen) + 0.1
        values.view(-1)[torch.randperm(values.numel(), generator=gen)[: values.numel() // 2]] = 0.0
        scores[name] = values
    return scores


def _blocks(masks: dict[str, torch.Tensor], ties: dict[str, torch.Tensor]) -> list[tuple[int, int]]:
    """(tied entries, pruned entries) of each half of each layer: a bias by position shows in its first half."""
    rows = []
    for name, mask in masks.items():
        flat_mask, flat_ties = mask.reshape(-1), ties[name].reshape(-1)
        half = flat_mask.numel() // 2
        for part in (slice(0, half), slice(half, None)):
            rows.append((int(flat_ties[part].sum()), int((~flat_mask[part]).sum())))
    return rows


@pytest.mark.parametrize("layerwise", [False, True], ids=["global", "layerwise"])
@pytest.mark.parametrize("prune", [magnitude_prune, score_prune], ids=["magnitude", "score"])
def test_tied_scores_are_pruned_in_proportion_to_the_ties_everywhere_the_same_for_one_seed(prune, layerwise) -> None:
    """50% of the scores tie at the lowest value and 30% are pruned: each tied entry goes with probability 0.6.

    Bound: the pruned count of a block with t tied entries is hypergeometric, with a variance below the
    binomial t·p·(1-p); it must lie within 4 binomial standard deviations (+1 for the rounded count) of t·p.
    Breaking ties by position pruned every tie of the first layers (or of each layer's first half) first.
    """
    scores = _half_tied()
    ties = {name: s == 0 for name, s in scores.items()}
    first = prune(scores, dense_masks(scores), 0.3, layerwise, tie_seed=1)
    total = sum(s.numel() for s in scores.values())
    assert _pruned(first) == round(0.3 * total)
    assert all(not (~first[n] & ~ties[n]).any() for n in first)  # only tied entries go: they are the lowest
    for tied, pruned in _blocks(first, ties):
        p = 0.3 / 0.5
        assert abs(pruned - tied * p) <= 4 * (tied * p * (1 - p)) ** 0.5 + 1, (tied, pruned)
    again = prune(scores, dense_masks(scores), 0.3, layerwise, tie_seed=1)
    other = prune(scores, dense_masks(scores), 0.3, layerwise, tie_seed=2)
    assert all(torch.equal(first[n], again[n]) for n in first)
    assert all(not torch.equal(first[n], other[n]) for n in first)
    if layerwise:
        assert [_pruned({n: m}) for n, m in first.items()] == [round(0.3 * s.numel()) for s in scores.values()]


def test_a_tie_order_belongs_to_positions_so_a_slightly_changed_tie_changes_the_mask_slightly() -> None:
    """The early-bird watch compares masks of consecutive steps: a seed must order ties the same way each time."""
    scores = _half_tied()
    before = magnitude_prune(scores, dense_masks(scores), 0.3, tie_seed=5)
    moved = {name: s.clone() for name, s in scores.items()}
    moved["decoder.c.weight"].view(-1)[torch.nonzero(moved["decoder.c.weight"].view(-1) == 0)[:10]] = 5.0
    after = magnitude_prune(moved, dense_masks(moved), 0.3, tie_seed=5)
    changed = sum(int((before[n] != after[n]).sum()) for n in before)
    assert 0 < changed <= 2 * 10 + 2  # the 10 entries that left the tie, and as many that took their place


def test_random_prune_like_keeps_layer_counts_among_survivors_at_new_positions() -> None:
    weights = _weights()
    half = magnitude_prune(weights, dense_masks(weights), 0.5, tie_seed=0)
    imp = magnitude_prune(weights, half, 0.8, tie_seed=0)
    draw = random_prune_like(kept_counts(imp), half, torch.Generator().manual_seed(1))
    same = random_prune_like(kept_counts(imp), half, torch.Generator().manual_seed(1))
    assert kept_counts(draw) == kept_counts(imp)
    assert all(not (draw[n] & ~half[n]).any() for n in draw)  # only survivors of `within`
    assert any(not torch.equal(draw[n], imp[n]) for n in draw)
    assert all(torch.equal(draw[n], same[n]) for n in draw)
    with pytest.raises(ValueError, match="cannot keep"):
        random_prune_like({**kept_counts(half), "encoder.body.2.weight": 10_000}, half, torch.Generator())


def test_random_prune_global_hits_the_global_count_within_survivors() -> None:
    weights = _weights()
    half = magnitude_prune(weights, dense_masks(weights), 0.5, tie_seed=0)
    draw = random_prune_global(half, 0.75, torch.Generator().manual_seed(0))
    assert _pruned(draw) == round(0.75 * sum(m.numel() for m in half.values()))
    assert all(not (draw[n] & ~half[n]).any() for n in draw)


@pytest.mark.parametrize("target", [1.0, -0.1, 1.5])
def test_targets_outside_the_range_are_rejected(target: float) -> None:
    weights = _weights()
    with pytest.raises(ValueError, match=rf"target sparsity {target} is outside \[0, 1\)"):
        magnitude_prune(weights, dense_masks(weights), target, tie_seed=0)


def test_a_target_below_the_current_sparsity_names_both() -> None:
    weights = _weights()
    masks = magnitude_prune(weights, dense_masks(weights), 0.5, tie_seed=0)
    with pytest.raises(ValueError, match=r"target sparsity 0.3 is below the current sparsity 0.5"):
        magnitude_prune(weights, masks, 0.3, tie_seed=0)
    with pytest.raises(ValueError, match="do not match the masks"):
        magnitude_prune({"x.weight": torch.ones(3)}, masks, 0.6, tie_seed=0)


def test_apply_masks_zeroes_parameters_in_place() -> None:
    layer = nn.Linear(6, 4)
    params = {"weight": layer.weight}
    masks = magnitude_prune(params, dense_masks(params), 0.5, tie_seed=0)
    before = layer.weight.data_ptr()
    apply_masks(params, masks)
    assert layer.weight.data_ptr() == before and layer.weight.requires_grad
    assert torch.all(layer.weight[~masks["weight"]] == 0)
    assert torch.all(layer.weight[masks["weight"]] != 0)


def test_sparsity_report_by_part_and_layer() -> None:
    masks = {
        "encoder.a.weight": torch.tensor([True, False, False, False]),
        "encoder.b.weight": torch.tensor([True, True, True, True]),
        "decoder.c.weight": torch.tensor([[False, True], [False, True]]),
    }
    report = sparsity_report(masks, lambda name: name.split(".")[0])
    assert report["kept"] == 7 and report["total_weights"] == 12
    assert report["total"] == pytest.approx(5 / 12)
    assert report["parts"] == {"encoder": pytest.approx(3 / 8), "decoder": pytest.approx(0.5)}
    assert report["layers"]["encoder.a.weight"] == pytest.approx(0.75)
    assert report["layers"]["encoder.b.weight"] == 0.0


def test_sparsity_schedule() -> None:
    assert sparsity_schedule(0.2, 3, None, None) == pytest.approx([0.2, 0.36, 0.488])
    assert sparsity_schedule(0.2, 0, None, None) == []
    to_adain = sparsity_schedule(0.2, 3, 0.892, None)  # the target overrides rounds
    assert len(to_adain) == 10 and to_adain[-1] == 0.892 and to_adain[-2] == pytest.approx(1 - 0.8**9)
    assert sparsity_schedule(0.2, None, 1 - 0.8**6, None) == pytest.approx([1 - 0.8**r for r in range(1, 7)])
    assert sparsity_schedule(0.5, None, 0.6, None) == [0.5, 0.6]  # capped at the target
    assert sparsity_schedule(0.2, 3, 0.9, [0.1, 0.5, 0.9]) == [0.1, 0.5, 0.9]  # explicit wins


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((0.0, 3, None, None), r"pruning rate 0.0 is outside \(0, 1\)"),
        ((1.0, 3, None, None), r"pruning rate 1.0 is outside \(0, 1\)"),
        ((0.2, 3, None, [0.5, 0.4]), "not strictly increasing"),
        ((0.2, 3, None, [0.5, 0.5]), "not strictly increasing"),
        ((0.2, 3, None, [0.5, 1.0]), r"\[1.0\] are outside \[0, 1\)"),
        ((0.2, 3, None, []), "empty"),
        ((0.2, 3, 1.0, None), r"target sparsity 1.0 is outside \(0, 1\)"),
        ((0.2, None, None, None), "rounds None"),
    ],
)
def test_sparsity_schedule_rejects_bad_input(args: tuple, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        sparsity_schedule(*args)
