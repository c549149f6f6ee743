"""Each method strategy in a tiny run does what it defines, checked with exact, machine-independent properties.

Every mask and every round's starting weights are recomputed from what the run
itself stored (its rounds' weights and masks, its rewind point) and compared
exactly: float rounding that differs between CPU kinds or thread counts changes
the stored weights and the recomputation alike, so the checks hold on any
machine. Nothing is compared with a float result recorded elsewhere.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lottery_style.engine.lottery import LotteryRun
from lottery_style.pruning.masks import Masks, dense_masks, kept_counts, magnitude_prune
from lottery_style.tickets.paths import round_dir
from lottery_style.tickets.storage import load_rewind_point, load_round
from tests.conftest import TINY, compose_train
from tests.test_lottery import RecordingRun as RoundStartsRun

ROUNDS = 2
METHODS = {
    "imp": ["pruning=imp"],
    "random_prune_own": ["pruning=random_prune_own"],
    "random_reinit_own": ["pruning=random_reinit_own"],
    "oneshot": ["pruning=oneshot"],
    "dense": ["pruning=dense"],
}


class RecordingRun(RoundStartsRun):
    """Keeps the weights every round starts from (after its masks are applied) and the last round's model."""

    def start_round(self, model, index, target, state):
        masks = super().start_round(model, index, target, state)
        self.model = model
        return masks


@pytest.fixture(scope="module", params=sorted(METHODS))
def finished(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> RecordingRun:
    out = tmp_path_factory.mktemp(request.param)
    lottery = RecordingRun(compose_train([*TINY, f"pruning.rounds={ROUNDS}", *METHODS[request.param]], output_dir=out), out)
    lottery.run()
    return lottery


def stored(run_dir: Path, index: int) -> tuple[dict[str, torch.Tensor], Masks]:
    """Round ``index``'s trained weights and masks as the run wrote them."""
    return load_round(round_dir(run_dir, index))


def magnitude_mask(lottery: LotteryRun, weights: dict[str, torch.Tensor], within: Masks, index: int) -> Masks:
    """Round ``index``'s magnitude mask of ``weights`` with the run's own tie order (its round's control seed)."""
    scope = {name: weights[name] for name in within}
    return magnitude_prune(scope, within, lottery.sparsities[index], tie_seed=lottery.control_seed * 1_000 + index)


def equal(a: Masks, b: Masks) -> bool:
    return set(a) == set(b) and all(torch.equal(a[name], b[name]) for name in a)


def test_every_round_prunes_exactly_its_scheduled_count(finished: RecordingRun) -> None:
    expected = [0.0] if finished.method == "dense" else [1 - 0.8**r for r in range(ROUNDS + 1)]
    assert finished.sparsities == pytest.approx(expected)
    for index, target in enumerate(finished.sparsities):
        masks = stored(finished.run_dir, index)[1]
        total = sum(m.numel() for m in masks.values())
        assert total - sum(kept_counts(masks).values()) == round(target * total), index


def test_each_rounds_mask_is_the_methods_rule_applied_to_the_stored_weights(finished: RecordingRun) -> None:
    dense_weights = stored(finished.run_dir, 0)[0]
    for index in range(1, len(finished.sparsities)):
        previous_weights, previous_masks = stored(finished.run_dir, index - 1)
        masks = stored(finished.run_dir, index)[1]
        assert all(not (masks[n] & ~previous_masks[n]).any() for n in masks) or finished.method == "oneshot"
        if finished.method in ("imp", "random_reinit_own"):  # IMP's rule on the run's own trajectory
            assert equal(masks, magnitude_mask(finished, previous_weights, previous_masks, index)), index
        elif finished.method == "oneshot":  # the dense round's weights, pruned once to each sparsity
            assert equal(masks, magnitude_mask(finished, dense_weights, dense_masks(previous_masks), index)), index
        elif finished.method == "random_prune_own":  # IMP's per-layer counts at other positions
            imp = magnitude_mask(finished, previous_weights, previous_masks, index)
            assert kept_counts(masks) == kept_counts(imp) and not equal(masks, imp), index


def test_each_round_starts_from_the_stored_rewind_point_or_fresh_weights_under_its_mask(finished: RecordingRun) -> None:
    rewind = load_rewind_point(finished.run_dir)
    assert all(torch.equal(finished.starts[0][name], value) for name, value in rewind.items())
    for index in range(1, len(finished.sparsities)):
        masks, start = stored(finished.run_dir, index)[1], finished.starts[index]
        origin = rewind
        if finished.method == "random_reinit_own":  # the scope's own fresh weights, drawn again from the control seed
            fresh = finished.fresh_scope_state(finished.model, index)
            assert set(masks) < set(fresh) <= set(rewind)  # the pruned parts' weights, their biases too
            origin = {**rewind, **fresh}
        for name, value in origin.items():
            expected = value * masks[name] if name in masks else value
            assert torch.equal(start[name], expected), (index, name)
        if finished.method == "random_reinit_own":
            assert all(not torch.equal(start[n][masks[n]], rewind[n][masks[n]]) for n in masks), index
