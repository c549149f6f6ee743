"""Run identity: the folder name hashes result-defining keys only, and a resume refuses a changed one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from lottery_style import train as train_module
from lottery_style.core.config import ConfigError
from lottery_style.engine.compose import compose
from lottery_style.tickets.identity import device_count, identity, is_result_key
from lottery_style.tickets.paths import round_dir
from lottery_style.tickets.storage import load_round
from tests.conftest import TINY, Crash, compose_train, crashing_run

QUICKSTART_DIR = "outputs/quickstart/adain-imp-39e2bc60"  # changes only on purpose: it renames every run folder
QUICKSTART_PRESET_DIR = "outputs/quickstart/adain-imp-6e47a9cd"  # the README's `experiment=quickstart`


def run_dir_name(overrides: list[str]) -> str:
    """``hydra.run.dir`` as the command line ``lottery-style <overrides>`` would resolve it."""
    return str(OmegaConf.select(compose(overrides, return_hydra_config=True), "hydra.run.dir"))


def test_the_quickstart_folder_name_is_pinned() -> None:
    assert run_dir_name([]) == QUICKSTART_DIR
    assert run_dir_name(["experiment=quickstart"]) == QUICKSTART_PRESET_DIR


@pytest.mark.parametrize(
    "knob",
    [
        "training.progress_bar=false", "training.checkpoint_every=7", "training.log_every=3",
        "training.channels_last=false", "training.compile=true", "training.keep_freed_memory=false",
        "data.num_workers=2", "data.grid_pairs=1", "pruning.matching_tolerance=0.1", "logger=csv",
        "pruning.layerwise=false", "hardware.devices=1",  # at their defaults: left out of the hash
    ],
)  # fmt: skip
def test_knobs_that_do_not_change_a_result_keep_the_folder(knob: str) -> None:
    assert run_dir_name([knob]) == QUICKSTART_DIR


@pytest.mark.parametrize(
    "key",
    ["data.batch_size=2", "hardware.devices=2", "hardware.precision=bf16-mixed", "model.optimizer.lr=0.001",
     "pruning.rate=0.3", "training.steps=61", "seed=1", "data.eval_contents=3"],
)  # fmt: skip
def test_result_defining_keys_change_the_folder(key: str) -> None:
    assert run_dir_name([key]) != QUICKSTART_DIR


def test_identity_lists_non_default_result_keys_only() -> None:
    keys = identity(compose_train(["model.optimizer.lr=0.001"]))
    assert keys["model.name"] == "adain" and keys["model.optimizer.lr"] == 0.001
    assert "pruning.rate" not in keys  # at its schema default
    assert not is_result_key("training.checkpoint_every") and is_result_key("training.steps")
    assert is_result_key("model.loss_weights.style") and not is_result_key("logger.mode")


def test_devices_resolve_to_a_count() -> None:
    assert device_count("cpu", -1) == device_count("cpu", "auto") == 1
    assert device_count("gpu", "0,1") == device_count("gpu", [0, 3]) == 2 and device_count("gpu", 4) == 4
    assert device_count("gpu", -1) == torch.cuda.device_count()


# ------------------------------------------------------------------ resume
MANET = [*TINY, "model=manet", "pruning.rounds=1", "training.steps=4"]  # MANet draws random numbers every step


CrashingRun = crashing_run(round_index=1)


@pytest.fixture(scope="module")
def resumed(tmp_path_factory) -> Path:
    """Checkpoints every 2 steps, killed at step 3 of round 1, resumed with checkpoints every 4 and a progress bar."""
    out = tmp_path_factory.mktemp("resumed")
    patch = pytest.MonkeyPatch()
    patch.setattr(train_module, "LotteryRun", CrashingRun)
    with pytest.raises(Crash):
        train_module.train(compose_train([*MANET, "training.checkpoint_every=2"], output_dir=out))
    patch.undo()
    assert [p.name for p in (round_dir(out, 1) / "checkpoints").glob("*/last.ckpt")] == ["last.ckpt"]
    train_module.train(compose_train([*MANET, "training.checkpoint_every=4", "training.progress_bar=true"], output_dir=out))
    return out


def test_changing_checkpoint_interval_or_progress_bar_resumes_bit_identically(resumed: Path, tmp_path: Path) -> None:
    assert run_dir_name([*MANET, "training.checkpoint_every=2"]) == run_dir_name(
        [*MANET, "training.checkpoint_every=4", "training.progress_bar=true"]
    )
    train_module.train(compose_train([*MANET, "training.checkpoint_every=4"], output_dir=tmp_path))  # uninterrupted
    for index in (0, 1):
        ours, _ = load_round(round_dir(resumed, index))
        theirs, _ = load_round(round_dir(tmp_path, index))
        assert ours.keys() == theirs.keys()
        assert all(torch.equal(ours[k], theirs[k]) for k in theirs), index
    ours, theirs = (json.loads((run / "summary.json").read_text())["rounds"] for run in (resumed, tmp_path))
    assert ours == theirs


def test_a_changed_result_key_is_refused_on_resume(resumed: Path) -> None:
    with pytest.raises(ConfigError) as error:
        train_module.train(compose_train([*MANET, "data.batch_size=4"], output_dir=resumed))
    message = str(error.value)
    assert "data.batch_size=2 -> 4" in message and str(resumed) in message and len(message.splitlines()) == 1
