"""The Lightning side of pruning: keep a fit's masks enforced.

Lightning's own ``ModelPruning`` and ``torch.nn.utils.prune`` are not used:
``ModelPruning`` prunes inside one fit, keeps the optimizer state and leaves the
masks out of checkpoints, and ``torch.nn.utils.prune`` renames every pruned
parameter (``weight_orig``, ``weight_mask``) and keeps a float mask beside it.
The masks here are plain bool tensors held by this callback, the parameters
keep their names, and the masks travel in Lightning checkpoints so that a
resumed fit continues with the same masks.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from torch import Tensor

from lottery_style.core.config import PART_PREFIXES
from lottery_style.pruning.masks import Masks, apply_masks, mask_factor


def trainable_state(module: torch.nn.Module) -> dict[str, Tensor]:
    """A detached copy of the weights a rewind restores (the frozen loss VGG never changes)."""
    return {k: v.detach().clone() for k, v in module.state_dict().items() if k.startswith(PART_PREFIXES)}


def masks_digest(masks: Masks) -> bytes:
    """sha1 over names, shapes and bits: equal digests mean identical masks."""
    digest = hashlib.sha1()
    for name in sorted(masks):
        mask = masks[name].detach().to("cpu", torch.bool).contiguous()
        digest.update(f"{name}{tuple(mask.shape)}".encode())
        digest.update(mask.numpy().tobytes())
    return digest.digest()


class MaskCallback(Callback):
    """Holds the masks of one fit.

    Pruned weights stay exactly zero: gradients are masked before every
    optimizer step (so Adam's moments of pruned entries stay zero) and the
    weights are masked again right after it (weight decay or momentum cannot
    revive them). Under DDP every rank computes the masks itself; the fit
    refuses to start unless all ranks hold identical ones.
    """

    def __init__(self, masks: Masks):
        self.masks = masks
        self.mask_hashes: list[str] = []  # sha1 of the masks on each rank, checked equal at fit start
        self._hooks: list[Any] = []
        self._params: dict[str, torch.nn.Parameter] = {}
        self._trained: list[tuple[torch.nn.Parameter, Tensor]] = []  # (parameter, mask_factor) of trained ones

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        # After a checkpoint restore, so the masks checked are the ones this fit trains with.
        self.mask_hashes = self._rank_hashes(trainer, pl_module.device)
        if len(set(self.mask_hashes)) > 1:
            raise RuntimeError(
                f"DDP ranks hold different masks (sha1 per rank: {self.mask_hashes}): every rank must compute "
                "the same masks from the same weights and seeds"
            )

    def _rank_hashes(self, trainer: Trainer, device: torch.device) -> list[str]:
        """Every rank's mask digest, gathered as a tensor (works with gloo and NCCL alike)."""
        digest = masks_digest(self.masks)
        if trainer.world_size == 1:
            return [digest.hex()]
        local = torch.tensor(list(digest), dtype=torch.int64, device=device)
        gathered = trainer.strategy.all_gather(local).reshape(trainer.world_size, -1).cpu()
        return [bytes(row.tolist()).hex() for row in gathered]

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        named = dict(pl_module.named_parameters())
        unknown = sorted(set(self.masks) - set(named))
        if unknown:
            raise KeyError(f"masks name parameters the model does not have: {unknown[:5]}")
        self._params = {name: named[name] for name in self.masks}
        self.masks = {name: mask.to(self._params[name].device) for name, mask in self.masks.items()}
        apply_masks(self._params, self.masks)
        # Only trained parameters can change after this point, so only they are masked at every step.
        self._trained = [
            (param, mask_factor(self.masks[name])) for name, param in self._params.items() if param.requires_grad
        ]
        self._hooks = [opt.register_step_post_hook(self._after_step) for opt in trainer.optimizers]

    @torch.no_grad()
    def _after_step(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        for param, factor in self._trained:
            param.mul_(factor)

    def on_before_optimizer_step(self, trainer: Trainer, pl_module: LightningModule, optimizer: Any) -> None:
        for param, factor in self._trained:
            if param.grad is not None:
                param.grad.mul_(factor)

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        for hook in self._hooks:
            hook.remove()
        self._hooks, self._trained = [], []

    def state_dict(self) -> dict[str, Any]:
        return {"masks": {name: mask.cpu() for name, mask in self.masks.items()}}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        self.masks = dict(state_dict["masks"])


class StepSeed(Callback):
    """Reseed torch before every training step from (replicate seed, step of the round's schedule).

    Models that draw random numbers per step (noise, attention subsampling) then see a
    stream that depends on the step index only: not on where epochs or
    checkpoints fall (``training.checkpoint_every`` is a resume knob, not a
    result), nor on whether the fit was resumed. ``first_step`` is where the fit
    starts in the schedule (k for a ticket rewound to step k), so every round
    draws at step s what the dense round drew at step s, like its batches.
    """

    def __init__(self, seed: int, first_step: int):
        self.seed = seed
        self.first_step = first_step

    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int) -> None:
        key = hashlib.sha1(f"{self.seed}/{self.first_step + trainer.global_step}".encode()).digest()
        torch.manual_seed(int.from_bytes(key[:8], "little"))
