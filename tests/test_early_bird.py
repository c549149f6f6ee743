"""Early-bird tickets (issue 16): the mask distance, the draw, and the ticket's E and cost beside IMP's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from lottery_style.cli import main
from lottery_style.engine.lottery import LotteryRun
from lottery_style.engine.validation import check_config
from lottery_style.pruning.early_bird import EarlyBird, mask_distance
from lottery_style.pruning.early_bird_watch import load_trackers
from lottery_style.pruning.masks import dense_masks, magnitude_prune
from lottery_style.tickets.paths import round_dir
from lottery_style.tickets.storage import load_round_masks
from tests.conftest import TINY, compose_train


def test_the_distance_is_the_fraction_of_entries_where_two_mask_sets_differ() -> None:
    a = {"x": torch.tensor([[True, False], [True, True]]), "y": torch.tensor([True, False, False])}
    b = {"x": torch.tensor([[True, True], [True, True]]), "y": torch.tensor([True, False, True])}
    assert mask_distance(a, b) == pytest.approx(2 / 7)
    assert mask_distance(a, a) == 0.0
    assert mask_distance(a, {name: ~mask for name, mask in a.items()}) == 1.0
    with pytest.raises(ValueError, match="differ in names or shapes"):
        mask_distance(a, {"x": b["x"]})


def test_a_ticket_is_drawn_once_the_last_window_of_distances_stays_below_the_threshold() -> None:
    generator = torch.Generator().manual_seed(0)
    base = {"x": torch.randn(10, 7, generator=generator), "y": torch.randn(13, generator=generator)}
    tracker = EarlyBird(target=0.3, threshold=0.05, window=2)
    noise = [1.0, 0.5, 0.01, 0.01, 0.01, 0.01]  # the weights settle after the third observation
    for step, scale in enumerate(noise, start=1):
        weights = {n: w + scale * torch.randn(w.shape, generator=generator) for n, w in base.items()}
        tracker.observe(10 * step, magnitude_prune(weights, dense_masks(weights), 0.3, tie_seed=0))
    assert tracker.steps == [20, 30, 40, 50, 60]
    assert max(tracker.distances[:2]) >= 0.05 > max(tracker.distances[2:4])
    assert tracker.drawn_step == 50  # the second consecutive distance below the threshold
    total = sum(w.numel() for w in base.values())
    pruned = sum(int((~m).sum()) for m in tracker.ticket().values())
    assert pruned == round(0.3 * total)  # the target sparsity exactly


def test_without_a_draw_the_ticket_is_the_last_mask_seen() -> None:
    tracker = EarlyBird(target=0.5, threshold=0.1, window=3)
    masks = [{"x": torch.tensor([True, False, True, False])}, {"x": torch.tensor([False, True, False, True])}]
    for step, mask in enumerate(masks):
        tracker.observe(step, mask)
    assert tracker.drawn_step is None and tracker.ticket() is masks[-1]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny early-bird run (masks every step, drawn after two distances below 0.5) and its IMP run."""
    common = [*TINY, "pruning.rounds=2", "pruning.scope=[decoder]"]
    early = ["pruning=early_bird", "pruning.early_bird.every=1", "pruning.early_bird.window=2",
             "pruning.early_bird.threshold=0.5"]  # fmt: skip
    out = {}
    for name, overrides in (("early_bird", early), ("imp", [])):
        folder = tmp_path_factory.mktemp(name)
        cfg = compose_train([*common, *overrides], output_dir=folder)
        check_config(cfg)
        LotteryRun(cfg, folder).run()
        out[name] = folder
    return out


def test_the_drawn_ticket_trains_at_its_rounds_sparsity_exactly(runs: dict[str, Path]) -> None:
    trackers = load_trackers(round_dir(runs["early_bird"], 0))
    record = json.loads((round_dir(runs["early_bird"], 0) / "early_bird.json").read_text())
    assert [t["steps"] for t in record["targets"]] == [[2, 3, 4]] * 2  # masks at steps 1..4 of round 0
    assert [t["drawn_step"] for t in record["targets"]] == [3, 3]
    for index, (tracker, target) in enumerate(zip(trackers, (0.2, 0.36)), start=1):
        masks = load_round_masks(round_dir(runs["early_bird"], index))
        assert all(torch.equal(masks[name], tracker.drawn[name]) for name in masks)
        total = sum(m.numel() for m in masks.values())
        assert sum(int((~m).sum()) for m in masks.values()) == round(target * total)


def test_the_report_shows_distance_and_the_tickets_e_and_cost_beside_imps(runs: dict[str, Path], tmp_path: Path) -> None:
    assert main(["report", str(runs["early_bird"]), str(runs["imp"]), "--out", str(tmp_path)]) == 0
    assert (tmp_path / "early_bird_distance-adain.png").is_file()
    rows = json.loads((tmp_path / "report.json").read_text())["adain"]["early_bird_vs_imp"]
    imp = json.loads((runs["imp"] / "summary.json").read_text())["rounds"]
    early = json.loads((runs["early_bird"] / "summary.json").read_text())["rounds"]
    assert [r["cost_steps"] for r in rows] == [3 + 4, 3 + 4]  # drawn at step 3, then 4 steps of its own
    assert [r["imp_cost_steps"] for r in rows] == [4 + 4, 4 + 2 * 4]  # round 0 and one or two pruned rounds
    assert [r["E"] for r in rows] == [row["E"] for row in early[1:]]
    assert [r["imp_E"] for r in rows] == [row["E"] for row in imp[1:]] and [r["imp_seeds"] for r in rows] == [1, 1]
    page = (tmp_path / "report.html").read_text()
    assert "Early-bird tickets (You et al. 2020)" in page and "early-bird cost (steps)" in page
