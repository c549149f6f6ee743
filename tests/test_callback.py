"""The mask callback: pruned weights stay exactly zero, optimizer state of pruned entries stays
zero, and the masks survive a checkpoint."""

from __future__ import annotations

import pytest
import torch
from lightning.pytorch import Callback, Trainer
from torch.utils.data import DataLoader

from lottery_style.pruning.callback import MaskCallback
from lottery_style.pruning.masks import magnitude_prune
from tests.conftest import tiny_model


def batches(n: int, size: int = 32) -> DataLoader:
    torch.manual_seed(3)
    data = [{"content": torch.rand(3, size, size), "style": torch.rand(3, size, size)} for _ in range(n)]
    return DataLoader(data, batch_size=2)


def trainer(steps: int, callback: MaskCallback, tmp_path, **kwargs) -> Trainer:
    return Trainer(
        max_steps=steps, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, callbacks=[callback], default_root_dir=tmp_path, **kwargs,
    )  # fmt: skip


def pruned_decoder_masks(model, sparsity: float = 0.5):
    weights = {k: p.detach() for k, p in model.prunable_weights()["decoder"].items()}
    return magnitude_prune(weights, {k: torch.ones_like(w, dtype=torch.bool) for k, w in weights.items()}, sparsity, tie_seed=0)


@pytest.mark.parametrize(
    "optimizer",
    [{"name": "adam"}, {"name": "adamw", "weight_decay": 0.1}, {"name": "sgd", "lr": 1e-5, "momentum": 0.9}],
    ids=["adam", "adamw", "sgd_momentum"],
)
def test_pruned_weights_and_their_optimizer_state_stay_zero(optimizer, tmp_path) -> None:
    model = tiny_model("adain", optimizer=optimizer, train_encoder=False)
    masks = pruned_decoder_masks(model)
    callback = MaskCallback(masks)
    fit = trainer(6, callback, tmp_path)
    fit.fit(model, batches(12))
    params = dict(model.named_parameters())
    state = fit.optimizers[0].state
    for name, mask in masks.items():
        param = params[name]
        assert torch.count_nonzero(param[~mask]) == 0, name
        assert torch.count_nonzero(param[mask]) > 0, name
        for value in state[param].values():
            if torch.is_tensor(value) and value.shape == param.shape:
                assert torch.count_nonzero(value[~mask]) == 0, f"{name} optimizer state"


class ReviveBeforeStep(Callback):
    """Writes into pruned positions outside the gradients, as a custom update or a buggy hook could."""

    def __init__(self, masks) -> None:
        self.masks = masks

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        params = dict(pl_module.named_parameters())
        with torch.no_grad():
            for name, mask in self.masks.items():
                params[name][~mask] = 1.0


def test_weights_are_masked_again_after_every_optimizer_step(tmp_path) -> None:
    model = tiny_model("adain", train_encoder=False)
    masks = pruned_decoder_masks(model)
    after_steps = []

    class Record(Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            params = dict(pl_module.named_parameters())
            after_steps.append(sum(int(torch.count_nonzero(params[n].detach()[~m])) for n, m in masks.items()))

    fit = trainer(3, MaskCallback(masks), tmp_path)
    fit.callbacks += [ReviveBeforeStep(masks), Record()]
    fit.fit(model, batches(6))
    assert after_steps == [0, 0, 0]


def test_masks_travel_in_checkpoints(tmp_path) -> None:
    model = tiny_model("adain", train_encoder=False)
    masks = pruned_decoder_masks(model)
    callback = MaskCallback(masks)
    fit = trainer(2, callback, tmp_path)
    fit.fit(model, batches(4))
    path = tmp_path / "masked.ckpt"
    fit.save_checkpoint(path)
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    restored = MaskCallback({})
    restored.load_state_dict(checkpoint["callbacks"][callback.state_key])
    assert set(restored.masks) == set(masks)
    for name, mask in masks.items():
        assert torch.equal(restored.masks[name], mask.cpu())
    # plain state_dict keys: the checkpoint loads into a plain, never-pruned module
    plain = tiny_model("adain", train_encoder=False)
    plain.load_state_dict(checkpoint["state_dict"])
    for name, mask in masks.items():
        assert torch.count_nonzero(dict(plain.named_parameters())[name][~mask]) == 0
