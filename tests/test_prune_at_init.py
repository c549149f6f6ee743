"""Pruning at initialisation (issue 16): SNIP, SynFlow and their layer-wise shuffled controls."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from lottery_style.cli import main
from lottery_style.core.config import ConfigError, Rewind
from lottery_style.data.datamodule import StylePairDataModule
from lottery_style.engine.lottery import LotteryRun
from lottery_style.engine.methods import METHODS, RoundInputs, method_strategy
from lottery_style.engine.validation import check_config
from lottery_style.pruning.callback import trainable_state
from lottery_style.pruning.masks import dense_masks, kept_counts
from lottery_style.pruning.synflow import linear_chains, synflow_scores
from lottery_style.tickets.paths import round_dir
from lottery_style.tickets.storage import load_round_masks, read_metrics
from tests.conftest import TINY, compose_train, tiny_model

AT_INIT = ("snip", "snip_shuffled", "synflow", "synflow_shuffled")
FEW_ITERATIONS = 4  # SynFlow's 100 iterations cost ~0.3 s each on a decoder: the tests take a few


@pytest.fixture(autouse=True, scope="module")
def few_synflow_iterations() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(METHODS["synflow"], "iterations", FEW_ITERATIONS)
        yield


# ------------------------------------------------------------ SynFlow's scores
def test_synflow_scores_a_chain_of_absolute_weights_fed_ones_and_conserves_flow_per_layer() -> None:
    first = torch.tensor([[1.0, -2.0, 0.5], [0.0, 3.0, -1.0]])  # (out 2, in 3)
    second = torch.tensor([[2.0, -1.0]])  # (out 1, in 2)
    weights = {"decoder.a": first, "decoder.b": second}
    scores = synflow_scores(weights, dense_masks(weights))
    flow = (second.abs() @ first.abs() @ torch.ones(3, 1)).item()  # R = 1ᵀ|W2||W1|1 = 2*3.5 + 1*4 = 11
    assert scores["decoder.a"] == pytest.approx((first.abs() * second.abs().T / flow).double())
    assert scores["decoder.b"] == pytest.approx((second.abs() * (first.abs().sum(1)) / flow).double())
    assert all(s.dtype == torch.float64 and s.sum().item() == pytest.approx(1.0) for s in scores.values())
    masked = synflow_scores(weights, {"decoder.a": first != 3.0, "decoder.b": torch.ones(1, 2, dtype=torch.bool)})
    assert masked["decoder.a"][1, 1] == 0  # a pruned weight carries no flow


def test_a_kernel_acts_on_a_constant_input_as_its_sum_and_chains_break_at_parts_and_widths() -> None:
    conv = torch.arange(2 * 3 * 3 * 3, dtype=torch.float64).view(2, 3, 3, 3) - 20
    scores = synflow_scores({"transform.conv": conv}, dense_masks({"transform.conv": conv}))
    assert scores["transform.conv"] == pytest.approx(conv.abs() / conv.abs().sum())  # R = sum |W|: each weight's share
    shapes = {"encoder.a": (4, 3), "encoder.b": (5, 4), "decoder.a": (6, 5), "decoder.b": (2, 7), "decoder.c": (1, 2)}
    chains = linear_chains({name: torch.ones(shape) for name, shape in shapes.items()})
    assert chains == [["encoder.a", "encoder.b"], ["decoder.a"], ["decoder.b", "decoder.c"]]


# ------------------------------------------------------------ the strategies
def round_inputs(target: float, **overrides: Any) -> RoundInputs:
    """Round 1 of a tiny AdaIN run pruning its decoder, with the model's initialisation as the rewind point."""
    model = tiny_model("adain")
    start = trainable_state(model)
    scope = {name: w for name, w in start.items() if name.startswith("decoder.") and w.dim() > 1}
    batch = {"content": torch.rand(2, 3, 32, 32), "style": torch.rand(2, 3, 32, 32)}
    values = {
        "index": 1, "target": target, "layerwise": False, "rewind": Rewind.init, "scope_names": frozenset(scope),
        "previous_masks": dense_masks(scope), "previous_weights": start, "dense_weights": start, "rewind_point": start,
        "generator": torch.Generator().manual_seed(7), "fresh_state": dict, "rewind_model": lambda: model,
        "training_batch": lambda: batch,
    }  # fmt: skip
    return RoundInputs(**{**values, **overrides})


def pruned(masks: dict[str, torch.Tensor]) -> int:
    return sum(m.numel() - int(m.count_nonzero()) for m in masks.values())


@pytest.mark.parametrize("method", AT_INIT)
def test_each_method_prunes_exactly_to_the_rounds_sparsity(method: str) -> None:
    for target in (0.2, 0.488):
        inputs = round_inputs(target)
        masks = method_strategy(method).next_masks(inputs)
        total = sum(m.numel() for m in masks.values())
        assert set(masks) == inputs.scope_names and pruned(masks) == round(target * total)


def test_synflow_needs_no_data(monkeypatch: pytest.MonkeyPatch) -> None:
    def touched(*args: Any, **kwargs: Any) -> None:
        pytest.fail("SynFlow touched the data")

    for name in ("setup", "train_dataloader", "test_dataloader", "__init__"):
        monkeypatch.setattr(StylePairDataModule, name, touched)
    inputs = round_inputs(0.36, training_batch=touched, rewind_model=touched)
    for method in ("synflow", "synflow_shuffled"):
        assert pruned(method_strategy(method).next_masks(inputs)) > 0


def test_snip_ranks_gradient_times_weight_on_the_lent_batch() -> None:
    inputs = round_inputs(0.5)
    masks = method_strategy("snip").next_masks(inputs)
    model, batch = inputs.rewind_model(), inputs.training_batch()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(inputs.generator.initial_seed())
        model.weighted_loss(model.losses(batch["content"], batch["style"]).terms).backward()
    params = dict(model.named_parameters())
    scores = torch.cat([(params[n].grad * params[n]).abs().flatten() for n in masks])
    kept = torch.cat([m.flatten() for m in masks.values()])
    assert scores[kept].min() >= scores[~kept].max()


@pytest.mark.parametrize("method", ("snip", "synflow"))
def test_the_shuffled_control_keeps_per_layer_counts_and_moves_the_positions(method: str) -> None:
    inputs = round_inputs(0.36)
    original = method_strategy(method).next_masks(inputs)
    shuffled = method_strategy(f"{method}_shuffled").next_masks(round_inputs(0.36))
    assert kept_counts(shuffled) == kept_counts(original)
    assert all(not torch.equal(shuffled[name], original[name]) for name in original if 0 < kept_counts(original)[name] < original[name].numel())


# --------------------------------------------------- in a run, as IMP's branches
@pytest.fixture(scope="module")
def imp_with_branches(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("imp")
    cfg = compose_train([*TINY, "pruning.rounds=2", "pruning.scope=[decoder]", f"pruning.branches=[{','.join(AT_INIT)}]"],
                        output_dir=out)  # fmt: skip
    check_config(cfg)
    LotteryRun(cfg, out).run()
    return out


@pytest.mark.parametrize("method", AT_INIT)
def test_a_branch_shares_imps_dense_round_and_schedule_and_hits_each_sparsity_exactly(imp_with_branches: Path, method: str) -> None:
    branch = imp_with_branches / "branches" / method
    assert read_metrics(round_dir(branch, 0))["source_run"] == str(imp_with_branches)
    for index, target in enumerate((0.2, 0.36), start=1):
        masks = load_round_masks(round_dir(branch, index))
        imp = load_round_masks(round_dir(imp_with_branches, index))
        total = sum(m.numel() for m in masks.values())
        assert pruned(masks) == pruned(imp) == round(target * total)
        assert read_metrics(round_dir(branch, index))["method"] == method


def test_pruning_at_the_rewind_point_refuses_lr_rewinding_and_fine_tuning(tmp_path: Path) -> None:
    cfg = compose_train([*TINY, "pruning.branches=[synflow]", "pruning.rewind=lr", "pruning.rewind_step=1"], output_dir=tmp_path)
    with pytest.raises(ConfigError, match=r"^pruning.rewind=lr is invalid for synflow, whose masks are drawn for the rewind point: "
                                          r"expected pruning.rewind=init or step$"):  # fmt: skip
        check_config(cfg)


def test_the_report_of_an_imp_run_shows_its_branches_beside_it(imp_with_branches: Path, tmp_path: Path) -> None:
    assert main(["report", str(imp_with_branches), "--out", str(tmp_path)]) == 0
    numbers = json.loads((tmp_path / "report.json").read_text())["adain"]
    assert sorted(numbers) == ["imp", "snip", "snip_shuffled", "synflow", "synflow_shuffled"]
    assert numbers["snip"]["runs"] == [str(imp_with_branches / "branches" / "snip")]
