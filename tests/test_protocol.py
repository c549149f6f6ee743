"""The lottery-ticket protocol as the literature defines it (issue 12): frozen parts, branches and their
starting points, late rewinding's steps and batches, replicate seeds, the rewinding modes, the strategies."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
from lightning.pytorch import Callback
from omegaconf import OmegaConf

from lottery_style.core.config import ConfigError, Rewind
from lottery_style.engine.lottery import LotteryRun
from lottery_style.engine.methods import METHODS, MethodStrategy, RoundInputs, method_strategy, register_method
from lottery_style.engine.rewinding import Segment, round_segments
from lottery_style.engine.validation import check_config
from lottery_style.pruning.callback import trainable_state
from lottery_style.pruning.masks import dense_masks, kept_counts
from lottery_style.tickets.paths import round_dir
from lottery_style.tickets.storage import load_rewind_point, load_round, load_round_masks
from tests.conftest import TINY, compose_train, tiny_model

STEPS, K = 4, 2


class BatchRecorder(Callback):
    """Per fit: the step it starts at in the stream, the steps it takes, a digest of each batch, the first LR."""

    def __init__(self, log: list[dict[str, Any]], segment: Segment):
        self.entry: dict[str, Any] = {"start": segment.start, "batches": [], "lr": None}
        log.append(self.entry)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.entry["batches"].append(hashlib.sha1(batch["content"].numpy().tobytes()).hexdigest())
        if self.entry["lr"] is None:
            self.entry["lr"] = trainer.optimizers[0].param_groups[0]["lr"]


class RecordingRun(LotteryRun):
    """Keeps every round's starting weights and every fit's batches."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.starts: dict[int, dict[str, torch.Tensor]] = {}
        self.fits: list[dict[str, Any]] = []

    def start_round(self, model, index, target, state):
        masks = super().start_round(model, index, target, state)
        self.starts[index] = trainable_state(model)
        return masks

    def build_trainer(self, ticket_dir, mask_callback, index, logger, segment):
        trainer = super().build_trainer(ticket_dir, mask_callback, index, logger, segment)
        trainer.callbacks.append(BatchRecorder(self.fits, segment))
        return trainer


def config(tmp: Path, *overrides: str):
    return compose_train([*TINY, f"training.steps={STEPS}", "pruning.rounds=1", *overrides], output_dir=tmp)


def run(tmp: Path, *overrides: str) -> RecordingRun:
    cfg = config(tmp, *overrides)
    check_config(cfg)
    lottery = RecordingRun(cfg, tmp)
    lottery.run()
    return lottery


@pytest.fixture(scope="module")
def late_imp(tmp_path_factory) -> RecordingRun:
    """IMP of the decoder alone, rewound to step k=2 of 4: the encoder trains but is out of the pruned scope."""
    return run(tmp_path_factory.mktemp("late"), "pruning.scope=[decoder]", "pruning.rewind=step", f"pruning.rewind_step={K}")


# ------------------------------------------------------------ 1. frozen parts
def test_a_frozen_encoder_is_never_pruned_and_the_loss_network_stays_bit_identical(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^pruning.scope=\['encoder', 'decoder'\] prunes encoder"):
        check_config(config(tmp_path, "model.train_encoder=false", "pruning.scope=[encoder,decoder]"))
    lottery = run(tmp_path, "model.train_encoder=false", "pruning.scope=[decoder]")
    initial = trainable_state(tiny_model("adain", train_encoder=False))
    weights, masks = load_round(round_dir(tmp_path, 1))
    assert set(masks) == {k for k in masks if k.startswith("decoder.")}
    encoder = [k for k in initial if k.startswith("encoder.")]
    assert encoder and all(torch.equal(weights[k], initial[k]) for k in encoder)  # the frozen encoder is the loss VGG
    assert lottery.rewind_point is not None


# ---------------------------------------- 2, 5. branches start where IMP does
def test_random_reinit_gives_fresh_weights_to_the_scope_only_and_rewinds_the_rest(late_imp: RecordingRun, tmp_path) -> None:
    branch = run(tmp_path, "pruning=random_reinit", f"pruning.source_run={late_imp.run_dir}", "pruning.scope=[decoder]",
                 "pruning.rewind=step", f"pruning.rewind_step={K}")  # fmt: skip
    rewind = load_rewind_point(late_imp.run_dir)
    start, masks = branch.starts[1], load_round_masks(round_dir(tmp_path, 1))
    assert all(torch.equal(masks[k], m) for k, m in load_round_masks(round_dir(late_imp.run_dir, 1)).items())
    outside = [k for k in start if not k.startswith("decoder.")]
    assert outside and all(torch.equal(start[k], rewind[k]) for k in outside), "out-of-scope parts must be rewound"
    for key, mask in masks.items():
        assert not torch.equal(start[key][mask], rewind[key][mask]), key
        assert torch.count_nonzero(start[key][~mask]) == 0
    assert [fit["start"] for fit in branch.fits] == [K]  # no dense round of its own: round 0 is IMP's


def test_random_prune_branch_reuses_the_dense_round_and_the_rewind_point(late_imp: RecordingRun, tmp_path) -> None:
    branch = run(tmp_path, "pruning=random_prune", f"pruning.source_run={late_imp.run_dir}", "pruning.scope=[decoder]",
                 "pruning.rewind=step", f"pruning.rewind_step={K}")  # fmt: skip
    assert [fit["start"] for fit in branch.fits] == [K]
    imp_masks, masks = load_round_masks(round_dir(late_imp.run_dir, 1)), load_round_masks(round_dir(tmp_path, 1))
    assert kept_counts(masks) == kept_counts(imp_masks)
    rewind = load_rewind_point(late_imp.run_dir)
    assert all(torch.equal(branch.starts[1][k], rewind[k] * masks[k] if k in masks else rewind[k]) for k in rewind)


def test_a_branch_of_an_unfinished_or_different_run_is_refused(late_imp: RecordingRun, tmp_path) -> None:
    branch = ["pruning=random_prune", f"pruning.source_run={late_imp.run_dir}", "pruning.scope=[decoder]",
              "pruning.rewind=step", f"pruning.rewind_step={K}"]  # fmt: skip
    with pytest.raises(ConfigError, match=r"differs from this run in pruning.rate, training.steps: expected its IMP run$"):
        check_config(config(tmp_path, *branch, "pruning.rate=0.3", "training.steps=5"))
    unfinished = tmp_path / "imp_still_running"
    shutil.copytree(late_imp.run_dir, unfinished)
    (round_dir(unfinished, 1) / "DONE").unlink()  # as a parallel launcher finds it
    with pytest.raises(ConfigError, match="has not finished round_01 yet"):
        check_config(config(tmp_path, *[b.replace(str(late_imp.run_dir), str(unfinished)) for b in branch]))
    with pytest.raises(ConfigError, match="is for branches of an IMP run, not pruning.method=imp"):
        check_config(config(tmp_path, f"pruning.source_run={late_imp.run_dir}"))


def test_random_reinit_keeps_a_torchvision_layout_encoder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torchvision.models

    real = torchvision.models.vgg19
    monkeypatch.setattr(torchvision.models, "vgg19", lambda weights=None: real(weights=None))  # no download here
    lottery = run(tmp_path, "model.encoder.weights=torchvision", "pruning.branches=[random_reinit]")
    branch_weights, _ = load_round(round_dir(tmp_path / "branches" / "random_reinit", 1))
    assert branch_weights["encoder.body.0.weight"].shape == (64, 3, 3, 3)  # torchvision indexing: conv 1_1 first
    imp_weights, _ = load_round(round_dir(lottery.run_dir, 1))
    assert set(branch_weights) == set(imp_weights)


# ------------------------------------------------------- 4. late rewinding
def test_a_ticket_rewound_to_step_k_trains_k_to_t_on_the_dense_runs_batches_and_lr(late_imp: RecordingRun) -> None:
    dense_first, dense_rest, ticket = late_imp.fits
    assert (dense_first["start"], len(dense_first["batches"])) == (0, K)  # round 0 split at k ...
    assert (dense_rest["start"], len(dense_rest["batches"])) == (K, STEPS - K)  # ... then k..T, fresh optimizer
    assert (ticket["start"], len(ticket["batches"])) == (K, STEPS - K)  # T-k steps, not T
    assert ticket["batches"] == dense_rest["batches"]  # batch k onwards, as the dense run saw them
    assert ticket["batches"][0] != dense_first["batches"][0]
    assert ticket["lr"] == dense_rest["lr"] < dense_first["lr"]  # the LR schedule continues from k


# ------------------------------------------------------------ 6. replicates
def test_replicate_seeds_draw_different_controls_on_the_same_evaluation_pairs(tmp_path: Path) -> None:
    runs = [run(tmp_path / str(seed), "pruning=random_prune_own", f"seed={seed}") for seed in (0, 1)]
    masks = [load_round_masks(round_dir(r.run_dir, 1)) for r in runs]
    assert kept_counts(masks[0]).keys() == kept_counts(masks[1]).keys()
    assert any(not torch.equal(masks[0][k], masks[1][k]) for k in masks[0])
    assert runs[0].fits[0]["batches"] != runs[1].fits[0]["batches"]  # the training stream follows the seed
    pairs = []
    for lottery in runs:
        datamodule = lottery.build()[1]
        datamodule.setup("test")
        pairs.append(datamodule.eval_pairs)
    assert pairs[0] == pairs[1]


# --------------------------------------------------------- 7. rewinding modes
@pytest.mark.parametrize(
    ("rewind", "segments"),
    [
        (Rewind.init, [Segment(0, STEPS, 0)]),
        (Rewind.step, [Segment(K, STEPS, K)]),
        (Rewind.lr, [Segment(K, STEPS, K)]),
        (Rewind.finetune, [Segment(K, STEPS, STEPS, hold_lr=True)]),
    ],
)
def test_every_rewinding_mode_retrains_with_its_schedule(rewind: Rewind, segments: list[Segment]) -> None:
    k = 0 if rewind == Rewind.init else K
    assert round_segments(rewind, k, STEPS, 1) == segments
    assert round_segments(rewind, k, STEPS, 0) == (
        [Segment(0, K, 0), Segment(K, STEPS, K)] if rewind == Rewind.step else [Segment(0, STEPS, 0)]
    )


def lr_sequence(lr_from: int, hold: bool, steps: int = 3) -> list[float]:
    model = tiny_model("adain", optimizer={"lr": 1.0, "lr_decay": 0.5})
    model.lr_from, model.lr_hold = lr_from, hold
    schedule = model.configure_optimizers()
    optimizer, scheduler = schedule["optimizer"], schedule["lr_scheduler"]["scheduler"]
    values = []
    for _ in range(steps):
        values.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return values


def test_lr_rewinding_replays_the_schedule_from_k_and_fine_tuning_holds_the_final_lr() -> None:
    assert lr_sequence(0, False) == pytest.approx([1.0, 1 / 1.5, 1 / 2.0])
    assert lr_sequence(K, False) == pytest.approx([1 / 2.0, 1 / 2.5, 1 / 3.0])
    assert lr_sequence(STEPS, True) == pytest.approx([1 / 3.0] * 3)


def inputs(rewind: Rewind, **overrides: Any) -> RoundInputs:
    def state(value: float) -> dict[str, torch.Tensor]:
        return {"decoder.w": torch.full((2, 3), value), "encoder.w": torch.full((4,), value)}

    values = {
        "index": 1, "target": 0.5, "layerwise": False, "rewind": rewind, "scope_names": frozenset({"decoder.w"}),
        "previous_masks": dense_masks({"decoder.w": torch.ones(2, 3)}), "previous_weights": state(2.0),
        "dense_weights": state(1.0), "rewind_point": state(0.0), "generator": torch.Generator().manual_seed(0),
        "fresh_state": lambda: {"decoder.w": torch.full((2, 3), 9.0)},
    }  # fmt: skip
    return RoundInputs(**{**values, **overrides})


@pytest.mark.parametrize(
    ("method", "rewind", "start"),
    [
        ("imp", Rewind.init, 0.0),
        ("imp", Rewind.step, 0.0),
        ("imp", Rewind.lr, 2.0),  # the previous round's trained weights
        ("imp", Rewind.finetune, 2.0),
        ("oneshot", Rewind.finetune, 1.0),  # the dense weights, never the previous round's
        ("oneshot", Rewind.lr, 1.0),
        ("oneshot", Rewind.init, 0.0),
    ],
)
def test_each_strategy_starts_from_the_point_its_rewinding_mode_names(method: str, rewind: Rewind, start: float) -> None:
    weights = method_strategy(method).start_weights(inputs(rewind))
    assert all(torch.all(w == start) for w in weights.values())


def test_random_reinit_renews_only_the_scope_and_follows_imps_mask() -> None:
    source = {"decoder.w": torch.tensor([[True, False, True], [False, True, True]])}
    strategy = method_strategy("random_reinit")
    round_inputs = inputs(Rewind.init, source_masks=source)
    assert strategy.next_masks(round_inputs) is source
    start = strategy.start_weights(round_inputs)
    assert torch.all(start["decoder.w"] == 9.0) and torch.all(start["encoder.w"] == 0.0)


def test_random_prune_keeps_imps_counts_and_its_draw_follows_the_generator() -> None:
    weights = {"decoder.w": torch.arange(6.0).view(2, 3)}
    source = {"decoder.w": torch.tensor([[False, False, True], [False, True, True]])}
    strategy = method_strategy("random_prune")

    def draw(seed: int) -> torch.Tensor:
        masks = strategy.next_masks(inputs(Rewind.init, source_masks=source, previous_weights=weights,
                                           generator=torch.Generator().manual_seed(seed)))  # fmt: skip
        assert kept_counts(masks) == kept_counts(source)
        return masks["decoder.w"]

    assert any(not torch.equal(draw(0), draw(seed)) for seed in range(1, 6))


# ------------------------------------------------------- 13. the registry
def test_a_strategy_registered_from_outside_the_package_runs(tmp_path: Path) -> None:
    @register_method("test_half_from_dense")
    class HalfFromDense(MethodStrategy):
        """Prunes the dense weights' half with the smallest magnitude, restarts from the dense weights."""

        def next_masks(self, inputs: RoundInputs):
            return method_strategy("oneshot").next_masks(inputs)

        def start_weights(self, inputs: RoundInputs):
            return inputs.dense_weights

    try:
        cfg = config(tmp_path, "pruning.method=test_half_from_dense", "pruning.sparsities=[0.5]")
        check_config(cfg)
        lottery = RecordingRun(cfg, tmp_path)
        rows = lottery.run()["rows"]
        assert [row["method"] for row in rows] == ["test_half_from_dense"] * 2
        assert rows[1]["sparsity"] == pytest.approx(0.5, abs=1e-6)
        dense, _ = load_round(round_dir(tmp_path, 0))
        masks = load_round_masks(round_dir(tmp_path, 1))
        assert all(torch.equal(lottery.starts[1][k], dense[k] * masks[k] if k in masks else dense[k]) for k in dense)
    finally:
        METHODS.pop("test_half_from_dense")
    assert OmegaConf.select(cfg, "pruning.method") == "test_half_from_dense"
