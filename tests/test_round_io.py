"""Round tickets on disk: what ``record`` writes is read back bit for bit by every reader, old folders too."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from safetensors import safe_open
from torch import nn

from lottery_style.engine.loggers import TICKET_FILES, WandbRunLogger
from lottery_style.engine.lottery import LotteryRun
from lottery_style.pruning import dense_masks, kept_counts, magnitude_prune
from lottery_style.pruning.callback import trainable_state
from lottery_style.tickets.loading import load_ticket
from lottery_style.tickets.paths import (
    LEGACY_MASKS_FILE,
    LEGACY_REWIND_FILE,
    LEGACY_WEIGHTS_FILE,
    LST_REWIND_FILE,
    LST_TICKET_FILE,
    REWIND_FILE,
    TICKET_FILE,
    round_dir,
)
from lottery_style.tickets.storage import load_rewind_point, load_round, load_round_masks, save_rewind_point, save_round
from lottery_style.tools.report import write_report
from tests.conftest import TINY, compose_train
from tests.test_export import write_lst_file

SPARSITY = 1 - 0.8**10  # 89.26%: the paper's AdaIN ticket
Tensors = dict[str, torch.Tensor]


class Recorded(LotteryRun):
    """Keeps what ``record`` saw in memory: every round's weights and masks, and the rewind point."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.saved: dict[int, tuple[Tensors, Tensors]] = {}

    def record(self, model, datamodule, index, mask_callback, *args):
        masks = {name: mask.detach().cpu().clone() for name, mask in mask_callback.masks.items()}
        self.saved[index] = (trainable_state(model), masks)
        return super().record(model, datamodule, index, mask_callback, *args)


class Resumed(Exception):
    """Raised by :class:`Resuming` with the state the first unfinished round would start from."""


class Resuming(LotteryRun):
    def start_round(self, model, index, target, state):
        raise Resumed(index, state, self.rewind_point)


def _config(run_dir: Path, rounds: int):
    return compose_train([*TINY, f"pruning.rounds={rounds}"], output_dir=run_dir)


@pytest.fixture(scope="module")
def recorded(tmp_path_factory) -> Recorded:
    run_dir = tmp_path_factory.mktemp("run")
    run = Recorded(_config(run_dir, 1), run_dir)
    run.run()
    return run


def _bits(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.view(torch.int32) if tensor.dtype == torch.float32 else tensor


def assert_ticket_equal(loaded: Tensors, weights: Tensors, masks: Tensors) -> None:
    """Same names in the same order; kept values and unmasked tensors bit for bit, pruned entries +0.0."""
    assert list(loaded) == list(weights)
    for name, tensor in weights.items():
        assert loaded[name].dtype == tensor.dtype and loaded[name].shape == tensor.shape, name
        if name in masks:
            keep = masks[name]
            assert torch.equal(_bits(loaded[name][keep]), _bits(tensor[keep])), name
            assert torch.equal(_bits(loaded[name][~keep]), torch.zeros_like(_bits(tensor[~keep]))), name
        else:
            assert torch.equal(_bits(loaded[name]), _bits(tensor)), name


def assert_masks_equal(loaded: Tensors, masks: Tensors) -> None:
    assert list(loaded) == list(masks)  # the order global pruning ranks in
    assert all(loaded[n].dtype == torch.bool and torch.equal(loaded[n], masks[n]) for n in masks)
    assert kept_counts(loaded) == kept_counts(masks)  # exact sparsity


def _resume(run_dir: Path, rounds: int) -> tuple[int, Any, Tensors]:
    with pytest.raises(Resumed) as raised:
        Resuming(_config(run_dir, rounds), run_dir).run()
    return raised.value.args


def _write_old_way(run_dir: Path) -> None:
    """Rewrite a run folder as before the compact format: weights.pt + mask.pt per round, rewind_point.pt."""
    for ticket in sorted(run_dir.glob("round_*")):
        weights, masks = load_round(ticket)
        torch.save(weights, ticket / LEGACY_WEIGHTS_FILE)
        torch.save(masks, ticket / LEGACY_MASKS_FILE)
        (ticket / TICKET_FILE).unlink()
    torch.save(load_rewind_point(run_dir), run_dir / LEGACY_REWIND_FILE)
    (run_dir / REWIND_FILE).unlink()


def _write_lst_way(run_dir: Path) -> None:
    """Rewrite a run folder as before safetensors: ticket.lst per round (the mask order in its metadata, as that
    writer kept it), rewind_point.lst."""
    for ticket in sorted(run_dir.glob("round_*")):
        weights, masks = load_round(ticket)
        write_lst_file(ticket / LST_TICKET_FILE, weights, masks, {"mask_order": list(masks)}, compress=False)
        (ticket / TICKET_FILE).unlink()
    write_lst_file(run_dir / LST_REWIND_FILE, load_rewind_point(run_dir), {}, {}, compress=False)
    (run_dir / REWIND_FILE).unlink()


# ------------------------------------------------------------- written by _record
def test_a_round_is_one_ticket_file_and_the_rewind_point_is_beside_it(recorded: Recorded) -> None:
    for index in (0, 1):
        names = {p.name for p in round_dir(recorded.run_dir, index).iterdir()}
        assert names == {TICKET_FILE, "metrics.json", "config.yaml", "grid.png", "logs", "DONE"}
        with safe_open(round_dir(recorded.run_dir, index) / TICKET_FILE, "pt") as handle:  # no pickle
            stored = handle.keys()
            assert set(recorded.saved[index][1]) < {key.removesuffix(":mask") for key in stored}
    with safe_open(recorded.run_dir / REWIND_FILE, "pt") as handle:
        assert set(handle.keys()) == set(recorded.rewind_point or {})
    assert not (recorded.run_dir / LEGACY_REWIND_FILE).exists()


def test_every_round_and_the_rewind_point_load_bit_for_bit(recorded: Recorded) -> None:
    for index, (weights, masks) in recorded.saved.items():
        ticket = round_dir(recorded.run_dir, index)
        loaded, loaded_masks = load_round(ticket)
        assert_ticket_equal(loaded, weights, masks)
        assert_masks_equal(loaded_masks, masks)
        assert_masks_equal(load_round_masks(ticket), masks)
    assert recorded.rewind_point is not None
    assert_ticket_equal(load_rewind_point(recorded.run_dir), recorded.rewind_point, {})


def test_resume_starts_the_next_round_from_the_recorded_ticket(recorded: Recorded, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(recorded.run_dir, run_dir)
    index, state, rewind_point = _resume(run_dir, rounds=2)
    weights, masks = recorded.saved[1]
    assert index == 2
    assert_ticket_equal(state.final_weights, weights, masks)
    assert_masks_equal(state.masks, masks)
    assert_ticket_equal(rewind_point, recorded.rewind_point, {})


def test_stylize_reads_the_recorded_ticket(recorded: Recorded) -> None:
    weights, masks = recorded.saved[1]
    ticket = round_dir(recorded.run_dir, 1)
    model, parts = load_ticket(ticket, "adain")
    assert_ticket_equal(trainable_state(model), weights, masks)
    assert parts.masks is not None
    assert_masks_equal(parts.masks, masks)
    assert parts.info == {"method": "imp", "round": 1, "sparsity": pytest.approx(0.2, abs=1e-6)}


def test_the_wandb_artifact_holds_the_whole_ticket(recorded: Recorded, tmp_path: Path, monkeypatch) -> None:
    """The artifact's files, copied alone into a fresh folder, give the ticket back."""
    added: dict[str, str] = {}
    artifact = SimpleNamespace(add_file=lambda path, policy: added.update({Path(path).name: path}))
    monkeypatch.setitem(sys.modules, "wandb", SimpleNamespace(Artifact=lambda *a, **k: artifact, Image=None))
    cfg = compose_train([*TINY, "logger=wandb", "logger.log_grid=false", "logger.mode=disabled"], output_dir=tmp_path)
    logger = WandbRunLogger(cfg, recorded.run_dir)
    run = SimpleNamespace(log=lambda values: None, log_artifact=lambda a: None, finish=lambda: None)
    logger._round = SimpleNamespace(experiment=run)  # type: ignore[assignment]
    ticket = round_dir(recorded.run_dir, 1)
    logger.end_round(1, {"E": 1.0}, ticket)
    assert added == {name: str(ticket / name) for name in TICKET_FILES}
    copy = tmp_path / "artifact"
    copy.mkdir()
    for name, path in added.items():
        shutil.copy(path, copy / name)
    weights, masks = recorded.saved[1]
    loaded, loaded_masks = load_round(copy)
    assert_ticket_equal(loaded, weights, masks)
    assert_masks_equal(loaded_masks, masks)


# -------------------------------------------------------------- old run folders
def _assert_reads_as_recorded(run_dir: Path, recorded: Recorded) -> None:
    """Every round of an old-layout ``run_dir`` (no current ticket file) and its rewind point load as recorded."""
    for index, (weights, masks) in recorded.saved.items():
        ticket = round_dir(run_dir, index)
        assert not (ticket / TICKET_FILE).exists()
        loaded, loaded_masks = load_round(ticket)
        assert_ticket_equal(loaded, weights, masks)
        assert_masks_equal(loaded_masks, masks)
        assert_masks_equal(load_round_masks(ticket), masks)
        model, _ = load_ticket(ticket)
        assert_ticket_equal(trainable_state(model), weights, masks)
    assert_ticket_equal(load_rewind_point(run_dir), recorded.rewind_point, {})


def _assert_resumes_as_recorded(run_dir: Path, recorded: Recorded) -> None:
    """Resuming ``run_dir`` for 2 rounds starts round 2 from round 1's recorded weights, masks and rewind point."""
    index, state, rewind_point = _resume(run_dir, rounds=2)
    assert index == 2
    assert_ticket_equal(state.final_weights, *recorded.saved[1])
    assert_masks_equal(state.masks, recorded.saved[1][1])
    assert_ticket_equal(rewind_point, recorded.rewind_point, {})


def test_a_folder_written_the_old_way_loads_and_resumes(recorded: Recorded, tmp_path: Path) -> None:
    run_dir = tmp_path / "old"
    shutil.copytree(recorded.run_dir, run_dir)
    _write_old_way(run_dir)
    _assert_reads_as_recorded(run_dir, recorded)
    _assert_resumes_as_recorded(run_dir, recorded)


def test_a_folder_written_before_safetensors_loads_resumes_and_reports(recorded: Recorded, tmp_path: Path) -> None:
    run_dir = tmp_path / "lst"
    shutil.copytree(recorded.run_dir, run_dir)
    _write_lst_way(run_dir)
    assert all((round_dir(run_dir, index) / LST_TICKET_FILE).is_file() for index in recorded.saved)
    _assert_reads_as_recorded(run_dir, recorded)
    write_report([run_dir], tmp_path / "report")
    assert (tmp_path / "report" / "report.json").is_file()
    _assert_resumes_as_recorded(run_dir, recorded)


def test_an_old_mask_file_of_something_else_is_refused(tmp_path: Path) -> None:
    torch.save({"w": torch.zeros(3)}, tmp_path / LEGACY_MASKS_FILE)
    with pytest.raises(ValueError, match="not a mask file"):
        load_round_masks(tmp_path)


# ------------------------------------------------------------------------ size
def _small_ticket(sparsity: float) -> tuple[Tensors, Tensors]:
    """Convs with biases, a norm and an unpruned layer; pruned entries left as mul_ leaves them (-0.0 too)."""
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 64, 3), nn.Conv2d(64, 128, 3), nn.BatchNorm2d(128), nn.Conv2d(128, 256, 3), nn.Linear(256, 32)
    )
    weights = {name: p for name, p in net.named_parameters() if p.dim() > 1 and not name.startswith("4.")}
    masks = magnitude_prune(weights, dense_masks(weights), sparsity, tie_seed=0)
    with torch.no_grad():
        for name, mask in masks.items():
            weights[name].mul_(mask)
    return {k: v.detach().clone() for k, v in net.state_dict().items()}, masks


def test_round_file_is_within_5_percent_of_the_floor_at_high_sparsity(tmp_path: Path) -> None:
    state, masks = _small_ticket(SPARSITY)
    save_round(tmp_path, state, masks)
    kept = sum(kept_counts(masks).values())
    prunable = sum(m.numel() for m in masks.values())
    unpruned_bits = sum(8 * t.numel() * t.element_size() for n, t in state.items() if n not in masks)
    floor_bytes = (32 * kept + prunable + unpruned_bits) / 8
    assert kept == prunable - round(SPARSITY * prunable)
    size = (tmp_path / TICKET_FILE).stat().st_size  # weights and masks: the round's only ticket file
    assert size <= 1.05 * floor_bytes, size / floor_bytes
    loaded, loaded_masks = load_round(tmp_path)
    assert_ticket_equal(loaded, state, masks)
    assert_masks_equal(loaded_masks, masks)


def test_dense_rewind_point_is_no_bigger_than_raw_fp32_plus_its_header(tmp_path: Path) -> None:
    state, _ = _small_ticket(0.0)
    raw = sum(t.numel() * t.element_size() for t in state.values())
    stats = save_rewind_point(tmp_path, state)
    assert stats.file_bytes == (tmp_path / REWIND_FILE).stat().st_size
    assert raw < stats.file_bytes <= raw + 2048
    assert_ticket_equal(load_rewind_point(tmp_path), state, {})


def test_a_ticket_with_nonzero_pruned_weights_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    state, masks = _small_ticket(0.5)
    name = next(iter(masks))
    with pytest.raises(ValueError, match="nonzero pruned entries"):
        save_round(tmp_path, {**state, name: torch.ones_like(state[name])}, masks)
    assert list(tmp_path.iterdir()) == []
