"""Every method breaks ties in its ranking without a bias by layer order (issue 22, point 3).

Half of each decoder layer's weights of a tiny AdaIN are set to exactly 0 (at
random positions), and each method prunes the decoder to 20%: the zeros tie at
the lowest score of every ranking, so 40% of them go. With ties broken by
position, the first layers lost all their zeros and the last layers none;
broken in a seeded random order, each layer loses 40% of its tied entries
within sampling error. Bound: a layer's pruned count among its t tied entries
is hypergeometric, with a variance below the binomial t·p·(1-p); it must lie
within 4 binomial standard deviations (+1 for the rounded count) of t·p.
"""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from lottery_style.core.config import Rewind
from lottery_style.engine.methods import METHODS, RoundInputs, method_strategy
from lottery_style.engine.methods.snip import snip_scores
from lottery_style.pruning.callback import trainable_state
from lottery_style.pruning.early_bird import EarlyBird
from lottery_style.pruning.early_bird_watch import EarlyBirdWatch
from lottery_style.pruning.masks import Masks, dense_masks
from tests.conftest import tiny_model

TARGET = 0.2
# Each method's mask, or (for the controls at random positions) each layer's count, follows the ranking's ties.
METHOD_NAMES = ("imp", "oneshot", "random_prune_own", "random_reinit_own", "snip", "snip_shuffled", "synflow",
                "synflow_shuffled")  # fmt: skip


@pytest.fixture(autouse=True, scope="module")
def few_synflow_iterations() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(METHODS["synflow"], "iterations", 4)  # 100 iterations cost ~30 s here: the ties are the same
        yield


@pytest.fixture(scope="module")
def half_zero() -> torch.nn.Module:
    """A tiny AdaIN whose decoder weights are half exact zeros, at random positions of each layer."""
    model = tiny_model("adain")
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for weight in model.prunable_weights()["decoder"].values():
            flat = weight.view(-1)
            flat[torch.randperm(flat.numel(), generator=generator)[: flat.numel() // 2]] = 0.0
    return model


def round_inputs(model: torch.nn.Module, seed: int) -> RoundInputs:
    """Round 1 of a run pruning the decoder, every weight state (dense, trained, rewind point) the half-zero one."""
    start = trainable_state(model)
    scope = {name: start[name] for name in model.prunable_weights()["decoder"]}
    batch = {"content": torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1)),
             "style": torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(2))}  # fmt: skip
    return RoundInputs(
        index=1, target=TARGET, layerwise=False, rewind=Rewind.init, scope_names=frozenset(scope),
        previous_masks=dense_masks(scope), previous_weights=start, dense_weights=start, rewind_point=start,
        generator=torch.Generator().manual_seed(seed), fresh_state=dict, rewind_model=lambda: model,
        training_batch=lambda: batch,
    )  # fmt: skip


def tied_entries(method: str, inputs: RoundInputs) -> Masks:
    """The entries tied at the lowest score of the method's ranking: zero weights, or SNIP's zero |g·θ|."""
    if method.startswith("snip"):
        model, batch = inputs.rewind_model(), inputs.training_batch()  # type: ignore[misc]
        scores = snip_scores(model, batch, sorted(inputs.scope_names), inputs.tie_seed)
        return {name: score == 0 for name, score in scores.items()}
    return {name: inputs.rewind_point[name] == 0 for name in inputs.scope_names}


def assert_in_proportion(masks: Masks, ties: Masks) -> None:
    tied_total = sum(int(t.sum()) for t in ties.values())
    pruned_total = sum(int((~m).sum()) for m in masks.values())
    assert pruned_total == round(TARGET * sum(m.numel() for m in masks.values()))
    p = pruned_total / tied_total
    assert p < 1, "the test needs more tied entries than pruned ones"
    for name, mask in masks.items():
        tied, pruned = int(ties[name].sum()), int((~mask).sum())
        assert abs(pruned - tied * p) <= 4 * (tied * p * (1 - p)) ** 0.5 + 1, (name, tied, pruned)


@pytest.mark.parametrize("method", METHOD_NAMES)
def test_each_method_prunes_every_layer_in_proportion_to_its_ties_the_same_way_for_one_seed(
    method: str, half_zero: torch.nn.Module
) -> None:
    strategy = method_strategy(method)
    inputs = round_inputs(half_zero, seed=11)
    masks = strategy.next_masks(inputs)
    assert_in_proportion(masks, tied_entries(method, inputs))
    again = strategy.next_masks(round_inputs(half_zero, seed=11))
    other = strategy.next_masks(round_inputs(half_zero, seed=12))
    assert all(torch.equal(masks[name], again[name]) for name in masks)
    assert any(not torch.equal(masks[name], other[name]) for name in masks)


def test_the_early_bird_watch_ranks_ties_in_the_seeds_order(half_zero: torch.nn.Module) -> None:
    names = list(half_zero.prunable_weights()["decoder"])

    def watched(seed: int) -> Masks:
        tracker = EarlyBird(TARGET, threshold=0.1, window=2)
        watch = EarlyBirdWatch([tracker], names, every=1, layerwise=False, ticket_dir=None, costs={}, tie_seed=seed)  # type: ignore[arg-type]
        trainer: Any = SimpleNamespace(datamodule=SimpleNamespace(start_step=0), global_step=1)
        watch.on_train_batch_end(trainer, half_zero, None, None, 0)  # type: ignore[arg-type]
        return tracker.ticket()

    masks = watched(4)
    ties = {name: p.detach() == 0 for name, p in half_zero.prunable_weights()["decoder"].items()}
    assert_in_proportion(masks, ties)
    assert all(torch.equal(masks[n], watched(4)[n]) for n in masks)
    assert any(not torch.equal(masks[n], watched(5)[n]) for n in masks)
