"""The IMP driver: round 0 dense, then prune -> rewind -> fit -> evaluate -> record.

Each round is one fit with a fresh Trainer and optimizer. A finished round is a
ticket folder with a ``DONE`` marker (see :mod:`lottery_style.tickets`), so
rerunning the same command skips finished rounds and resumes an unfinished one
from its last checkpoint. Controls (random pruning, random re-initialisation,
one-shot pruning, dense) are methods of the same driver and run the same rounds.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import Trainer, seed_everything
from lightning.pytorch.callbacks import ModelCheckpoint, RichProgressBar
from omegaconf import DictConfig, OmegaConf

from lottery_style.atomic import atomic_torch_save, atomic_write_json, atomic_write_text, load_tensors
from lottery_style.config import Method, Rewind
from lottery_style.data.datamodule import StylePairDataModule
from lottery_style.evaluation import evaluate, evaluation_device, save_grid
from lottery_style.loggers import RunLogger, build_run_logger
from lottery_style.models import PARTS, create_model
from lottery_style.models.base import StyleTransferModule
from lottery_style.pruning.callback import MaskCallback, StepSeed, trainable_state
from lottery_style.pruning.masks import (
    Masks,
    apply_masks,
    dense_masks,
    kept_counts,
    load_masks,
    magnitude_prune,
    random_prune_like,
    save_masks,
    sparsity_report,
    sparsity_schedule,
)
from lottery_style.speed import SpeedOptions
from lottery_style.tickets import format_table, is_complete, mark_complete, round_dir, write_summary

log = logging.getLogger(__name__)
REWIND_FILE = "rewind_point.pt"


def round_sparsities(cfg: DictConfig) -> list[float]:
    """Target sparsity of every round, round 0 (dense) included."""
    pruning = cfg.pruning
    if pruning.method == Method.dense:
        return [0.0]
    explicit = list(pruning.sparsities) if pruning.sparsities is not None else None
    return [0.0, *sparsity_schedule(pruning.rate, pruning.rounds, pruning.target_sparsity, explicit)]


def part_of(name: str) -> str:
    return name.split(".", 1)[0]


@dataclass
class RoundState:
    """What the next round starts from."""

    masks: Masks
    final_weights: dict[str, torch.Tensor] | None = None  # the previous round's trained weights


class LotteryRun:
    """One IMP run (or control) in one output folder."""

    def __init__(self, cfg: DictConfig, run_dir: str | Path):
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.method = Method(cfg.pruning.method)
        self.scope = [str(getattr(p, "value", p)) for p in cfg.pruning.scope]
        self.sparsities = round_sparsities(cfg)
        self.device = evaluation_device(cfg.hardware.accelerator)
        # Kept in memory so that DDP ranks other than 0 never wait for rank 0's files.
        self.rewind_point: dict[str, torch.Tensor] | None = None
        self.dense_weights: dict[str, torch.Tensor] | None = None

    # ------------------------------------------------------------------ setup
    def _build(self) -> tuple[StyleTransferModule, StylePairDataModule]:
        seed_everything(self.cfg.seed, workers=True)
        model = create_model(self.cfg.model)
        datamodule = StylePairDataModule(self.cfg.data, steps_per_epoch=self.cfg.training.steps)
        return model, datamodule

    def _scope_weights(self, model: StyleTransferModule) -> dict[str, torch.nn.Parameter]:
        groups = model.prunable_weights()
        return {name: p for part in self.scope for name, p in groups[part].items()}

    # -------------------------------------------------------------- the loop
    def run(self) -> dict[str, Any]:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        model, datamodule = self._build()
        run_logger = build_run_logger(self.cfg, self.run_dir)
        state = RoundState(masks=dense_masks(self._scope_weights(model)))
        for index, target in enumerate(self.sparsities):
            ticket_dir = round_dir(self.run_dir, index)
            if is_complete(ticket_dir):
                state = RoundState(masks=load_masks(ticket_dir / "mask.pt"), final_weights=load_tensors(ticket_dir / "weights.pt"))
                if index == 0:
                    self.rewind_point = load_tensors(self.run_dir / REWIND_FILE)
                    self.dense_weights = state.final_weights
                log.info("round %d already finished in %s: skipped", index, ticket_dir)
                continue
            masks = self._start_round(model, index, target, state)
            metrics = self._fit_round(model, datamodule, index, masks, ticket_dir, run_logger)
            state = RoundState(masks=masks, final_weights=trainable_state(model))
            if index == 0:
                self.dense_weights = state.final_weights
            log.info("round %d: sparsity %.4f, E %.5g", index, metrics["sparsity"], metrics["E"])
        rows, verdict = write_summary(self.run_dir, self.cfg.pruning.matching_tolerance)
        run_logger.finish(rows, verdict)
        table = format_table(rows, verdict)
        print(table)
        print(f"summary: {self.run_dir / 'summary.csv'}")
        return {"rows": rows, "verdict": verdict, "table": table}

    # ------------------------------------------------------ masks and rewinds
    def _start_round(self, model: StyleTransferModule, index: int, target: float, state: RoundState) -> Masks:
        """Set the model's starting weights for round ``index`` and return its masks."""
        if index == 0:
            return state.masks
        assert state.final_weights is not None
        model.load_state_dict(state.final_weights, strict=False)
        masks = self._next_masks(model, index, target, state.masks)
        self._rewind(model, index)
        apply_masks(self._scope_weights(model), masks)
        return masks

    def _next_masks(self, model: StyleTransferModule, index: int, target: float, current: Masks) -> Masks:
        weights = {name: p.detach() for name, p in self._scope_weights(model).items()}
        layerwise = self.cfg.pruning.layerwise
        generator = torch.Generator().manual_seed(self.cfg.pruning.seed * 1_000 + index)
        source = self.cfg.pruning.source_run
        if self.method == Method.oneshot:
            assert self.dense_weights is not None
            dense_weights = {name: self.dense_weights[name] for name in weights}
            return magnitude_prune(dense_weights, dense_masks(dense_weights), target, layerwise)
        if source is not None:
            reference = load_masks(round_dir(source, index) / "mask.pt")
        else:
            reference = magnitude_prune(weights, current, target, layerwise)
        if self.method == Method.random_prune:
            return random_prune_like(kept_counts(reference), {k: v.cpu() for k, v in current.items()}, generator)
        return reference  # imp and random_reinit share the magnitude mask

    def _rewind(self, model: StyleTransferModule, index: int) -> None:
        rewind = Rewind(self.cfg.pruning.rewind)
        if self.method == Method.random_reinit:
            self._reinitialise(model, index)
        elif rewind != Rewind.none:
            assert self.rewind_point is not None
            model.load_state_dict(self.rewind_point, strict=False)
        steps = self.cfg.training.steps
        if self.cfg.pruning.lr_rewind:
            model.lr_step_offset = self.cfg.pruning.rewind_step if rewind == Rewind.step else 0
        else:
            model.lr_step_offset = index * steps

    def _reinitialise(self, model: StyleTransferModule, index: int) -> None:
        """Fresh random weights for every pruned part (the paper's "random tickets")."""
        torch.manual_seed(self.cfg.pruning.seed * 1_000 + 500 + index)
        fresh_cfg = OmegaConf.merge(self.cfg.model, {"encoder": {"weights": "random"}})
        fresh = create_model(fresh_cfg)
        fresh_state = {k: v for k, v in trainable_state(fresh).items() if part_of(k) in self.scope}
        model.load_state_dict(fresh_state, strict=False)

    # ------------------------------------------------------------- one round
    def _rewind_step(self, index: int) -> int | None:
        if index != 0:
            return None
        return self.cfg.pruning.rewind_step if Rewind(self.cfg.pruning.rewind) == Rewind.step else 0

    def _fit_round(
        self,
        model: StyleTransferModule,
        datamodule: StylePairDataModule,
        index: int,
        masks: Masks,
        ticket_dir: Path,
        run_logger: RunLogger,
    ) -> dict[str, Any]:
        checkpoint_dir = ticket_dir / "checkpoints"
        last = checkpoint_dir / "last.ckpt"
        mask_callback = MaskCallback(masks, rewind_step=self._rewind_step(index))
        sparsity = sparsity_report(masks, part_of)
        round_info = {"round": index, "method": self.method.value, "sparsity": sparsity["total"]}
        trainer = self._trainer(ticket_dir, mask_callback, index, run_logger.round_logger(index, round_info))
        trainer.fit(model, datamodule=datamodule, ckpt_path=last if last.is_file() else None, weights_only=True)
        if index == 0:
            if mask_callback.rewind_point is None:
                raise RuntimeError("round 0 ended before its rewind step: pruning.rewind_step >= training.steps")
            self.rewind_point = mask_callback.rewind_point
        metrics = self._record(model, datamodule, index, mask_callback, sparsity, ticket_dir, trainer.is_global_zero)
        run_logger.end_round(index, metrics, ticket_dir)
        return metrics

    def _trainer(self, ticket_dir: Path, mask_callback: MaskCallback, index: int, logger: Any) -> Trainer:
        hw, training = self.cfg.hardware, self.cfg.training
        checkpoint = ModelCheckpoint(
            dirpath=ticket_dir / "checkpoints", save_last=True, save_top_k=0, every_n_train_steps=training.checkpoint_every
        )
        speed = SpeedOptions(training.channels_last, training.compile, training.keep_freed_memory)
        callbacks = [mask_callback, StepSeed(self.cfg.seed, index), checkpoint, speed]
        if training.progress_bar:
            callbacks.append(RichProgressBar())
        return Trainer(
            max_steps=training.steps,
            accelerator=hw.accelerator,
            devices=hw.devices,
            strategy=hw.strategy,
            precision=hw.precision,
            num_nodes=hw.num_nodes,
            callbacks=callbacks,
            logger=logger,
            default_root_dir=ticket_dir,
            log_every_n_steps=training.log_every,
            enable_progress_bar=training.progress_bar,
            enable_model_summary=index == 0,
            limit_val_batches=0,
            num_sanity_val_steps=0,
            use_distributed_sampler=False,
            deterministic=False,
        )

    def _record(
        self,
        model: StyleTransferModule,
        datamodule: StylePairDataModule,
        index: int,
        mask_callback: MaskCallback,
        sparsity: dict[str, Any],
        ticket_dir: Path,
        is_global_zero: bool,
    ) -> dict[str, Any]:
        """Evaluate and write the ticket; the DONE marker goes last so a crash leaves the round unfinished."""
        datamodule.setup("test")
        errors = evaluate(model, datamodule.test_dataloader(), self.device)
        model_sparsity = sparsity_report(
            {**dense_masks({n: p for g in model.prunable_weights().values() for n, p in g.items()}), **mask_callback.masks},
            part_of,
        )
        metrics = {
            "round": index,
            "method": self.method.value,
            "sparsity": sparsity["total"],
            "sparsity_model": model_sparsity["total"],
            **{f"sparsity_{part}": model_sparsity["parts"].get(part, 0.0) for part in PARTS},
            "sparsity_layers": model_sparsity["layers"],
            "weight_source": model.weight_source.value,
            "mask_hashes": mask_callback.mask_hashes,  # one per DDP rank, all equal (checked at fit start)
            **errors,
        }
        if is_global_zero:
            if index == 0:
                atomic_torch_save(mask_callback.rewind_point, self.run_dir / REWIND_FILE)
            save_masks(mask_callback.masks, ticket_dir / "mask.pt")
            atomic_torch_save(trainable_state(model), ticket_dir / "weights.pt")
            atomic_write_json(ticket_dir / "metrics.json", metrics)
            atomic_write_text(ticket_dir / "config.yaml", OmegaConf.to_yaml(self.cfg, resolve=True))
            save_grid(model, datamodule.grid_batch(), ticket_dir / "grid.png", self.device)
            mark_complete(ticket_dir)
            shutil.rmtree(ticket_dir / "checkpoints", ignore_errors=True)
        return metrics
