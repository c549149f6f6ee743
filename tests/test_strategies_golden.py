"""The method strategies keep the behaviour recorded before they replaced the driver's if-chains.

``tests/golden/strategies.json`` holds, per method, the sha1 of every round's
mask and of the weights every round starts from (captured as ``Trainer.fit``
is entered) of a tiny run, recorded on the driver before the refactor.
Recording: ``LOTTERY_WRITE_GOLDEN=1 python -m pytest tests/test_strategies_golden.py -n 0``.
Float sums, hence these digests, depend on the machine kind and thread count
(one thread, see conftest): the digests are this project's machine's.

Changed on purpose (issue 12), so recorded under their new names: the
self-trajectory controls are the explicit ``random_prune_own`` /
``random_reinit_own`` methods (the default controls are now branches of an
IMP run, point 5). Every other method's masks and round-start weights are
unchanged.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pytest
import torch
from lightning.pytorch import Trainer

from lottery_style.engine.lottery import LotteryRun
from lottery_style.tickets.paths import round_dir
from lottery_style.tickets.storage import load_round_masks
from tests.conftest import TINY, compose_train

GOLDEN = Path(__file__).parent / "golden" / "strategies.json"
ROUNDS = 2
# Golden name -> the overrides that select that behaviour. The training stream's seed was data.seed=1234 when
# recorded; it now follows the replicate seed unless data.stream_seed fixes it (issue 12, point 6).
METHODS = {
    "imp": ["pruning=imp"],
    "random_prune_own": ["pruning=random_prune", "pruning.method=random_prune_own"],
    "random_reinit_own": ["pruning=random_reinit", "pruning.method=random_reinit_own"],
    "oneshot": ["pruning=oneshot"],
    "dense": ["pruning=dense"],
}
RECORDED_STREAM = "data.stream_seed=1234"


def digest(tensors: dict[str, torch.Tensor]) -> str:
    sha = hashlib.sha1()
    for name in sorted(tensors):
        tensor = tensors[name].detach().cpu().contiguous()
        sha.update(f"{name}{tuple(tensor.shape)}{tensor.dtype}".encode())
        sha.update(tensor.numpy().tobytes())
    return sha.hexdigest()


def record(tmp: Path, overrides: list[str], monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    starts: list[str] = []
    fit = Trainer.fit

    def recording_fit(trainer: Trainer, model: torch.nn.Module, *args: Any, **kwargs: Any) -> Any:
        state = {k: v for k, v in model.state_dict().items() if k.startswith(("encoder.", "transform.", "decoder."))}
        starts.append(digest(state))
        return fit(trainer, model, *args, **kwargs)

    monkeypatch.setattr(Trainer, "fit", recording_fit)
    cfg = compose_train([*TINY, f"pruning.rounds={ROUNDS}", RECORDED_STREAM, *overrides], output_dir=tmp)
    lottery = LotteryRun(cfg, tmp)
    lottery.run()
    rounds = len(lottery.sparsities)
    masks = [digest(load_round_masks(round_dir(tmp, index))) for index in range(rounds)]
    return {"masks": masks, "starts": starts}


@pytest.mark.parametrize("method", sorted(METHODS))
def test_strategy_matches_the_recorded_behaviour(method: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    result = record(tmp_path, METHODS[method], monkeypatch)
    if os.environ.get("LOTTERY_WRITE_GOLDEN"):
        golden = json.loads(GOLDEN.read_text()) if GOLDEN.is_file() else {}
        golden[method] = result
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(json.dumps(golden, indent=1, sort_keys=True) + "\n")
        pytest.skip("golden recorded")
    expected = json.loads(GOLDEN.read_text())[method]
    assert result["masks"] == expected["masks"]
    assert result["starts"] == expected["starts"]
