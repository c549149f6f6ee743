"""Instability analysis (issue 16): two copies from the rewind point, E along their path, the barrier per k."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
from omegaconf import OmegaConf

from lottery_style.cli import main
from lottery_style.core.conf_dir import CONF_DIR
from lottery_style.core.config import ConfigError
from lottery_style.engine.evaluation import evaluate
from lottery_style.engine.instability import barrier, interpolate
from lottery_style.engine.lottery import LotteryRun
from lottery_style.engine.validation import check_config
from lottery_style.pruning.callback import trainable_state
from lottery_style.tickets.paths import round_dir
from lottery_style.tickets.storage import load_rewind_point, load_round_masks
from tests.conftest import TINY, compose_train

K, POINTS = 2, 3
IMP = [*TINY, "pruning.rounds=1", "pruning.scope=[decoder]", "pruning.rewind=step", f"pruning.rewind_step={K}",
       "pruning.branches=[instability]", f"pruning.instability.points={POINTS}"]  # fmt: skip


def analysed(out: Path, *overrides: str) -> tuple[Path, list[dict[str, Any]]]:
    """Run IMP with its instability branch; every fit of a copy: its folder, starting weights, masks, stream."""
    fits: list[dict[str, Any]] = []
    fit_segment = LotteryRun.fit_segment

    def recording(self, model, datamodule, index, segment, mask_callback, ticket_dir, logger) -> None:
        fits.append({"dir": ticket_dir, "start": trainable_state(model), "masks": mask_callback.masks,
                     "stream": datamodule.stream_seed, "segment": segment})  # fmt: skip
        fit_segment(self, model, datamodule, index, segment, mask_callback, ticket_dir, logger)

    cfg = compose_train([*IMP, *overrides], output_dir=out)
    check_config(cfg)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(LotteryRun, "fit_segment", recording)
        LotteryRun(cfg, out).run()
    return out, [f for f in fits if "copies" in f["dir"].parts]


@pytest.fixture(scope="module")
def imp(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, Any]]]:
    return analysed(tmp_path_factory.mktemp("imp"))


def records(run: Path) -> list[dict[str, Any]]:
    return json.loads((run / "branches" / "instability" / "instability.json").read_text())


def test_the_path_and_the_barrier_are_exact_at_the_ends() -> None:
    a, b = {"w": torch.tensor([1.0, -2.0, 0.0])}, {"w": torch.tensor([3.0, 0.5, 0.0])}
    assert torch.equal(interpolate(a, b, 0.0)["w"], a["w"]) and torch.equal(interpolate(a, b, 1.0)["w"], b["w"])
    assert torch.equal(interpolate(a, b, 0.5)["w"], torch.tensor([2.0, -0.75, 0.0]))
    assert barrier([1.0, 4.0, 3.0]) == 2.0 and barrier([1.0, 1.0]) == 0.0


def test_two_copies_share_the_mask_and_rewind_point_and_differ_in_data_order(imp) -> None:
    run, fits = imp
    assert len(fits) == 2 * 2  # the dense network and round 1's mask, two copies each
    rewind = load_rewind_point(run)
    imp_masks = load_round_masks(round_dir(run, 1))
    for pair, masks in zip((fits[:2], fits[2:]), (None, imp_masks)):
        a, b = pair
        assert (a["stream"], b["stream"]) == (0, 1)  # the run's stream seed, then another
        assert a["segment"] == b["segment"] and (a["segment"].start, a["segment"].end) == (K, 4)
        assert a["masks"].keys() == b["masks"].keys() and all(torch.equal(a["masks"][n], b["masks"][n]) for n in a["masks"])
        assert all(torch.equal(a["start"][k], b["start"][k]) for k in a["start"])
        if masks is None:
            assert all(bool(m.all()) for m in a["masks"].values())  # the dense network: all-ones mask
            assert all(torch.equal(a["start"][k], rewind[k]) for k in rewind)
        else:
            assert all(torch.equal(a["masks"][n], masks[n]) for n in masks)
            assert all(torch.equal(a["start"][k], rewind[k] * masks[k] if k in masks else rewind[k]) for k in rewind)


def test_the_path_ends_are_the_copies_errors_and_the_barrier_is_recorded_per_k(imp) -> None:
    run, _ = imp
    found = records(run)
    assert [(r["round"], r["rewind_step"], len(r["E"])) for r in found] == [(0, K, POINTS), (1, K, POINTS)]
    cfg = compose_train([*IMP], output_dir=run)
    lottery = LotteryRun(cfg, run)
    model, datamodule = lottery.build()
    datamodule.setup("test")
    for record in found:
        for end, copy in ((0, "a"), (-1, "b")):
            weights = torch.load(run / "branches" / "instability" / "copies" / f"r{record['round']:02d}-{copy}" / "weights.pt", weights_only=True)
            model.load_state_dict(weights, strict=False)
            assert record["E"][end] == evaluate(model, datamodule.test_dataloader(), lottery.device)["E"]
        assert record["barrier"] == max(record["E"]) - (record["E"][0] + record["E"][-1]) / 2


def test_copies_on_the_same_data_order_are_bit_identical_and_have_no_barrier(imp, tmp_path) -> None:
    run, _ = imp
    copy = tmp_path / "same_order"
    shutil.copytree(run, copy, ignore=shutil.ignore_patterns("branches"))  # IMP's rounds are finished: skipped
    _, fits = analysed(copy, "pruning.instability.stream_seed=0")
    assert [f["stream"] for f in fits] == [0, 0, 0, 0]
    for record in records(copy):
        assert record["barrier"] == 0.0 and len(set(record["E"])) == 1


def test_the_report_draws_the_barrier_and_an_analysis_alone_is_refused(imp, tmp_path) -> None:
    run, _ = imp
    assert main(["report", str(run), "--out", str(tmp_path)]) == 0
    assert (tmp_path / "instability-adain.png").is_file()
    numbers = json.loads((tmp_path / "report.json").read_text())["adain"]
    assert [r["barrier"] for r in numbers["instability"]] == [r["barrier"] for r in records(run)]
    with pytest.raises(ConfigError, match=r"^pruning.method=instability is an analysis of an IMP run: expected pruning=imp"):
        check_config(compose_train([*TINY, "pruning.method=instability", f"pruning.source_run={run}"], output_dir=tmp_path))


def test_the_recipe_sweeps_the_rewind_step_of_adain_imp_with_the_instability_branch() -> None:
    cfg = compose_train(["experiment=instability"])
    assert cfg.model.name == "adain" and cfg.pruning.method == "imp" and list(cfg.pruning.branches) == ["instability"]
    assert str(cfg.pruning.rewind) == "step" and cfg.training.steps == 160_000
    recipe = OmegaConf.load(CONF_DIR / "experiment" / "instability.yaml")
    assert recipe.hydra.sweeper.params["pruning.rewind_step"] == "0,1600,4000,8000,16000"  # 0-10% of a round


def test_the_analysis_is_a_wandb_run_of_its_own_job_type(tmp_path) -> None:
    from tests.test_wandb import offline_run

    run, _ = analysed(tmp_path, "logger=wandb", "logger.log_artifacts=false", "logger.log_grid=false")
    folders = list((run / "branches" / "instability" / "wandb").glob("offline-run-*"))
    (analysis,) = [r for r in map(offline_run, folders) if r["job_type"] == "instability"]
    logged = [row["instability/barrier"] for row in analysis["history"] if "instability/barrier" in row]
    assert logged == [r["barrier"] for r in records(run)]
    assert analysis["config"]["method"] == "instability"
