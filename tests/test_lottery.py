"""The IMP driver end to end on tiny runs: schedule, scope, rewinding, controls and resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from lottery_style.engine.lottery import LotteryRun
from lottery_style.pruning.callback import trainable_state
from lottery_style.pruning.masks import dense_masks, kept_counts, magnitude_prune
from lottery_style.tickets.paths import round_dir
from lottery_style.tickets.storage import load_rewind_point, load_round, load_round_masks
from tests.conftest import TINY, Crash, compose_train, crashing_run, tiny_model

RATE = 0.2
ROUNDS = 2


class RecordingRun(LotteryRun):
    """Keeps the weights every round starts from, to compare them with the rewind point."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.starts: dict[int, dict[str, torch.Tensor]] = {}

    def start_round(self, model, index, target, state):
        masks = super().start_round(model, index, target, state)
        self.starts[index] = trainable_state(model)
        return masks


def run(tmp: Path, *overrides: str, cls: type[LotteryRun] = RecordingRun) -> LotteryRun:
    cfg = compose_train([*TINY, f"pruning.rounds={ROUNDS}", *overrides], output_dir=tmp)
    lottery = cls(cfg, tmp)
    lottery.run()
    return lottery


def masks_of(run_dir: Path, index: int):
    return load_round_masks(round_dir(run_dir, index))


@pytest.fixture(scope="module")
def imp(tmp_path_factory) -> RecordingRun:
    return run(tmp_path_factory.mktemp("imp"))


def test_global_sparsity_follows_the_schedule(imp: RecordingRun) -> None:
    for index in range(ROUNDS + 1):
        masks = masks_of(imp.run_dir, index)
        total = sum(m.numel() for m in masks.values())
        pruned = total - sum(kept_counts(masks).values())
        assert abs(pruned - (1 - (1 - RATE) ** index) * total) <= len(masks)
        metrics = json.loads((round_dir(imp.run_dir, index) / "metrics.json").read_text())
        assert metrics["sparsity"] == pytest.approx(1 - (1 - RATE) ** index, abs=1e-6)
    assert {"encoder", "decoder"} == {name.split(".")[0] for name in masks}


def test_survivors_restart_from_the_rewind_point_bit_for_bit(imp: RecordingRun) -> None:
    torch.manual_seed(0)
    initial = trainable_state(tiny_model("adain"))  # what the seeded run built before round 0
    stored = load_rewind_point(imp.run_dir)
    for key, value in initial.items():
        assert torch.equal(stored[key], value), key
        assert torch.equal(imp.rewind_point[key], value), f"in-memory rewind point changed after training: {key}"
    for index in range(1, ROUNDS + 1):
        masks = masks_of(imp.run_dir, index)
        for key, value in imp.starts[index].items():
            if key in masks:
                assert torch.equal(value[masks[key]], stored[key][masks[key]]), (index, key)
                assert torch.count_nonzero(value[~masks[key]]) == 0
            else:
                assert torch.equal(value, stored[key]), (index, key)
    final = load_round(round_dir(imp.run_dir, ROUNDS))[0]
    assert any(not torch.equal(final[k], stored[k]) for k in stored), "training changed nothing"


def test_scope_and_late_rewinding(tmp_path) -> None:
    lottery = run(tmp_path, "pruning.scope=[decoder]", "pruning.rewind=step", "pruning.rewind_step=2", "pruning.rounds=1")
    metrics = json.loads((round_dir(tmp_path, 1) / "metrics.json").read_text())
    assert metrics["sparsity_encoder"] == 0.0
    assert metrics["sparsity_decoder"] == pytest.approx(RATE, abs=1e-6)
    assert set(masks_of(tmp_path, 1)) == {k for k in masks_of(tmp_path, 1) if k.startswith("decoder.")}
    stored = load_rewind_point(tmp_path)
    torch.manual_seed(0)
    initial = trainable_state(tiny_model("adain"))
    assert any(not torch.equal(stored[k], initial[k]) for k in stored), "step-2 rewind point equals init"
    masks = masks_of(tmp_path, 1)
    for key, value in lottery.starts[1].items():
        expected = stored[key] * masks[key] if key in masks else stored[key]
        assert torch.equal(value, expected), key


def test_random_prune_keeps_imp_counts_at_new_positions(imp: RecordingRun, tmp_path) -> None:
    run(tmp_path, "pruning=random_prune", f"pruning.source_run={imp.run_dir}")
    for index in range(1, ROUNDS + 1):
        ours, theirs = masks_of(tmp_path, index), masks_of(imp.run_dir, index)
        assert kept_counts(ours) == kept_counts(theirs)
        assert any(not torch.equal(ours[k], theirs[k]) for k in ours)


def test_random_reinit_keeps_imp_masks_with_fresh_weights(imp: RecordingRun, tmp_path) -> None:
    lottery = run(tmp_path, "pruning=random_reinit", f"pruning.source_run={imp.run_dir}")
    stored = load_rewind_point(imp.run_dir)
    for index in range(1, ROUNDS + 1):
        ours, theirs = masks_of(tmp_path, index), masks_of(imp.run_dir, index)
        assert all(torch.equal(ours[k], theirs[k]) for k in theirs)
        start = lottery.starts[index]
        for key, mask in ours.items():
            assert not torch.equal(start[key][mask], stored[key][mask]), key
            assert torch.count_nonzero(start[key][~mask]) == 0


def test_oneshot_prunes_the_dense_weights_once_to_each_target(tmp_path) -> None:
    lottery = run(tmp_path, "pruning=oneshot")
    dense = load_round(round_dir(tmp_path, 0))[0]
    scope = masks_of(tmp_path, 0)
    weights = {k: dense[k] for k in scope}
    for index in range(1, ROUNDS + 1):
        tie_seed = lottery.control_seed * 1_000 + index  # the round's control seed orders its ties
        expected = magnitude_prune(weights, dense_masks(weights), 1 - (1 - RATE) ** index, tie_seed=tie_seed)
        ours = masks_of(tmp_path, index)
        assert all(torch.equal(ours[k], expected[k]) for k in expected), index


CrashingRun = crashing_run(round_index=2)


def test_an_interrupted_run_resumes_to_the_uninterrupted_result(imp: RecordingRun, tmp_path) -> None:
    with pytest.raises(Crash):
        run(tmp_path, cls=CrashingRun)
    assert not (round_dir(tmp_path, 2) / "DONE").exists()
    assert [p.name for p in (round_dir(tmp_path, 2) / "checkpoints").glob("*/last.ckpt")] == ["last.ckpt"]
    run(tmp_path)  # the same command again
    for index in range(ROUNDS + 1):
        ours, theirs = masks_of(tmp_path, index), masks_of(imp.run_dir, index)
        assert all(torch.equal(ours[k], theirs[k]) for k in theirs), index
    ours = json.loads((tmp_path / "summary.json").read_text())["rounds"]
    theirs = json.loads((imp.run_dir / "summary.json").read_text())["rounds"]
    assert ours == theirs
