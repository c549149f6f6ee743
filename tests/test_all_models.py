"""Every registered architecture through the one IMP engine: a dense round and a pruned round each.

A model runs from its paper recipe (``experiment=paper_<name>_imp``) shrunk to test scale
when it has one, else from ``model=<name>``, so the recipes a user launches are the ones
exercised here, and an architecture added later is covered with no change to this file.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
import torch

import lottery_style.engine.evaluation
import lottery_style.engine.lottery
import lottery_style.pruning.callback
import lottery_style.pruning.masks
import lottery_style.tickets.verdict
from lottery_style.core.conf_dir import CONF_DIR
from lottery_style.core.config import PARTS
from lottery_style.engine.lottery import LotteryRun
from lottery_style.models import MODEL_REGISTRY
from lottery_style.tickets.paths import round_dir
from lottery_style.tickets.storage import load_round
from tests.conftest import compose_train
from tests.test_experiments import masks_of, pruned_count

# The smallest images every model accepts, one pruned round (conf/debug/smallest.yaml).
SMALLEST = ["debug=smallest"]
ENGINE = [lottery_style.engine.lottery, lottery_style.pruning.callback, lottery_style.pruning.masks, lottery_style.tickets.verdict,
          lottery_style.engine.evaluation]  # fmt: skip


def source_of(model: str) -> list[str]:
    recipe = f"paper_{model}_imp"
    return [f"experiment={recipe}"] if (CONF_DIR / "experiment" / f"{recipe}.yaml").is_file() else [f"model={model}"]


def assert_one_global_threshold(run_dir: Path, index: int = 1) -> None:
    """Round ``index``'s mask ranks the previous round's trained weights in one pool: no pruned |w|
    of any part exceeds a kept |w| of any part."""
    masks = masks_of(run_dir, index)
    trained = load_round(round_dir(run_dir, index - 1))[0]
    pruned = torch.cat([trained[k].abs()[~m].flatten() for k, m in masks.items()])
    kept = torch.cat([trained[k].abs()[m].flatten() for k, m in masks.items()])
    assert pruned.max() <= kept.min()


@pytest.mark.parametrize("model", sorted(MODEL_REGISTRY))
def test_one_imp_round_of_every_model_through_the_same_engine(model: str, tmp_path: Path) -> None:
    cfg = compose_train([*source_of(model), *SMALLEST], output_dir=tmp_path)
    assert (cfg.model.name, cfg.pruning.method) == (model, "imp")
    rows = LotteryRun(cfg, tmp_path).run()["rows"]
    assert [row["round"] for row in rows] == [0, 1]
    assert all(math.isfinite(row[key]) for row in rows for key in ("E", "E_content", "E_style"))
    masks = masks_of(tmp_path, 1)
    assert pruned_count(masks) == round(0.2 * sum(m.numel() for m in masks.values()))
    assert rows[1]["sparsity"] == pytest.approx(0.2, abs=1e-6)
    trained_parts = {key.split(".")[0] for key in load_round(round_dir(tmp_path, 1))[0]} & set(PARTS)
    assert {name.split(".")[0] for name in masks if not masks[name].all()} == trained_parts
    assert_one_global_threshold(tmp_path)
    logged = (round_dir(tmp_path, 0) / "logs" / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {f"train/{term}" for term in cfg.model.loss_weights} <= set(logged), "every loss term is logged by name"


def test_the_engine_names_no_model() -> None:
    """Models reach the engine only through the registry: no engine module mentions one."""
    names = re.compile(r"(?<![.\w])(" + "|".join(MODEL_REGISTRY) + r")\b", re.IGNORECASE)  # not the .lst ending
    for module in ENGINE:
        text = Path(module.__file__).read_text()
        assert not names.search(text), f"{module.__name__} names a model: {names.search(text).group()}"
