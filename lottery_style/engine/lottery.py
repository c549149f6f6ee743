"""The IMP driver: round 0 dense, then prune -> rewind -> fit -> evaluate -> record.

Each round is one fit (two for round 0 under weight rewinding to step k > 0,
see :mod:`lottery_style.engine.rewinding`) with a fresh Trainer and optimizer. What a
round's mask and starting weights are is the method's business
(:mod:`lottery_style.engine.methods`); this module walks the rounds, trains, records.
A finished round is a ticket folder with a ``DONE`` marker (see
:mod:`lottery_style.tickets.paths`), so rerunning the same command skips finished
rounds and resumes an unfinished one from its last checkpoint. Branches
(controls that follow an IMP run) reuse the IMP run's dense round 0 and rewind
point; ``pruning.branches`` runs them inside the IMP job, after its last round,
in ``<run>/branches/<method>/``.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import Callback, Trainer
from omegaconf import DictConfig, OmegaConf

from lottery_style.core.atomic import atomic_copy, atomic_write_json, atomic_write_text
from lottery_style.core.config import PARTS, Part, Rewind, control_seed, part_of, stream_seed
from lottery_style.data.datamodule import StylePairDataModule
from lottery_style.data.images import SKIPPED_IMAGES, merged_record
from lottery_style.engine.checkpointing import ResumeCheckpoint
from lottery_style.engine.cost import parameter_counts, stylization_flops
from lottery_style.engine.evaluation import evaluate, evaluation_device, save_grid, seeded_model
from lottery_style.engine.granularity import masked_parameters, run_pruner
from lottery_style.engine.loggers import RunLogger, build_run_logger, start_fit
from lottery_style.engine.methods import RoundInputs, method_strategy
from lottery_style.engine.progress import RoundProgressBar, round_description
from lottery_style.engine.ranks import barrier, gathered, is_rank_zero, rank
from lottery_style.engine.rewinding import Segment, round_segments
from lottery_style.engine.schedule import round_sparsities
from lottery_style.engine.speed import SpeedOptions
from lottery_style.engine.terminal import round_line, table_heading
from lottery_style.models import create_model
from lottery_style.models.base import StyleTransferModule
from lottery_style.models.components.released import without_weight_files
from lottery_style.pruning.callback import MaskCallback, StepSeed, trainable_state
from lottery_style.pruning.masks import Masks, apply_masks, dense_masks, sparsity_report
from lottery_style.pruning.pruner import Pruner
from lottery_style.tickets.paths import (
    CHECKPOINTS_DIR,
    GRID_FILE,
    LAST_CHECKPOINT,
    METRICS_FILE,
    OWN_ROUND_FILES,
    ROUND_CONFIG,
    SUMMARY_CSV,
    SUMMARY_JSON,
    branch_dir,
    checkpoint_dir,
    round_dir,
)
from lottery_style.tickets.storage import (
    is_complete,
    load_rewind_point,
    load_round,
    load_round_masks,
    mark_complete,
    read_metrics,
    rewind_point_file,
    save_rewind_point,
    save_round,
)
from lottery_style.tickets.verdict import format_table, is_matching, run_skipped_images, summary_rows, write_summary

log = logging.getLogger(__name__)


def link_or_copy(source: Path, target: Path) -> None:
    """A hard link where the file system allows (a branch reuses its IMP run's dense ticket and rewind point
    without a second copy of tens of MB each), else a copy. The files are written once and never modified."""
    target.unlink(missing_ok=True)
    try:
        os.link(source, target)
    except OSError:
        atomic_copy(source, target)


@dataclass
class RoundState:
    """What the next round starts from."""

    masks: Masks
    final_weights: dict[str, torch.Tensor] | None = None  # the previous round's trained weights


class LotteryRun:
    """One run of a method (IMP, a control, dense) in one output folder.

    ``label`` names a branch run inside its IMP job (``pruning.branches``): its
    terminal lines carry it, so that they cannot be taken for the IMP run's own.
    """

    def __init__(self, cfg: DictConfig, run_dir: str | Path, label: str = ""):
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.label = label
        self.method = str(cfg.pruning.method)
        self.strategy = method_strategy(self.method)
        self.rewind = Rewind(cfg.pruning.rewind)
        self.scope = [str(getattr(p, "value", p)) for p in cfg.pruning.scope]
        self.sparsities = round_sparsities(cfg)
        self.source = Path(cfg.pruning.source_run) if cfg.pruning.source_run else None
        self.control_seed = control_seed(cfg)
        self.device = evaluation_device(cfg.hardware.accelerator)
        # Kept in memory so that DDP ranks other than 0 never wait for rank 0's files.
        self.rewind_point: dict[str, torch.Tensor] | None = None
        self.dense_weights: dict[str, torch.Tensor] | None = None
        self.dense_E = float("nan")  # round 0's test error, the matching reference of every round line
        self.datamodule: StylePairDataModule | None = None  # the run's, for pruning at initialisation's batch
        self.round_zero_watch: list[Callback] = []  # the method's watch of round 0 (early-bird tickets)
        self.pruner = Pruner()  # pruning.granularity's rules, set for the run's model by :meth:`pruner_for`
        self._flops: int | None = None  # the dense count (inference_cost)

    # ------------------------------------------------------------------ setup
    def build(self) -> tuple[StyleTransferModule, StylePairDataModule]:
        """The model at its initialisation (seeded by the replicate seed) and the run's data module."""
        model = seeded_model(self.cfg)
        datamodule = StylePairDataModule(
            self.cfg.data, steps_per_epoch=self.cfg.training.steps, stream_seed=stream_seed(self.cfg)
        )
        return model, datamodule

    def scope_weights(self, model: StyleTransferModule) -> dict[str, torch.nn.Parameter]:
        groups = model.prunable_weights()
        return {name: p for part in self.scope for name, p in groups[part].items()}

    def pruner_for(self, model: StyleTransferModule) -> Pruner:
        """The run's pruner (``pruning.granularity``) over the scope of ``model``; kept as :attr:`pruner`."""
        self.pruner = run_pruner(self.cfg, model, self.scope_weights(model))
        return self.pruner

    # -------------------------------------------------------------- the loop
    def run(self) -> dict[str, Any]:
        if self.strategy.analysis:  # a branch that analyses the followed run instead of training tickets
            result = self.strategy.analyse(self)
            if is_rank_zero():
                run_logger = build_run_logger(self.cfg, self.run_dir)
                for name, records in result.items():
                    run_logger.log_analysis(name, records)  # W&B: a run of job_type <name> in the group
            return result
        self.run_dir.mkdir(parents=True, exist_ok=True)
        model, datamodule = self.build()
        self.datamodule = datamodule
        run_logger = build_run_logger(self.cfg, self.run_dir)
        state = RoundState(masks=self.pruner_for(model).dense(self.scope_weights(model)))
        for index, target in enumerate(self.sparsities):
            ticket_dir = round_dir(self.run_dir, index)
            if index == 0 and self.source is not None:
                self.adopt_source_round_zero()
            if is_complete(ticket_dir):
                weights, masks = load_round(ticket_dir)
                state = RoundState(masks=masks, final_weights=weights)
                if index == 0:
                    self.rewind_point = load_rewind_point(self.run_dir)
                    self.dense_weights = state.final_weights
                log.info("round %d already finished in %s: skipped", index, ticket_dir)
                self.report_round(read_metrics(ticket_dir), None)
                continue
            started = time.perf_counter()
            masks = self.start_round(model, index, target, state)
            metrics = self.fit_round(model, datamodule, index, masks, ticket_dir, run_logger)
            state = RoundState(masks=masks, final_weights=trainable_state(model))
            if index == 0:
                self.dense_weights = state.final_weights
            self.report_round(metrics, time.perf_counter() - started)
        result = self.summarise(run_logger)
        self.run_branches()
        log.info("rank %d: run finished (%s)", rank(), self.run_dir / SUMMARY_CSV)
        sync = run_logger.sync_command()
        if sync and not self.label and is_rank_zero():  # once per job: a branch's runs are in its IMP run's command
            print(f"W&B ran offline; upload with: {sync}")
        return result

    def report_round(self, metrics: dict[str, Any], seconds: float | None) -> None:
        """Log a finished round, and print its line on rank 0 (``seconds`` None: finished before this invocation)."""
        if metrics["round"] == 0:
            self.dense_E = float(metrics["E"])
        matching = is_matching(metrics["E"], self.dense_E, self.cfg.pruning.matching_tolerance)
        line = round_line(metrics, len(self.sparsities) - 1, self.dense_E, matching, seconds, self.label)
        log.info(line)
        if is_rank_zero():
            print(line, flush=True)

    def summarise(self, run_logger: RunLogger) -> dict[str, Any]:
        """Rank 0 writes and prints the summary; every rank then reads it, so every rank exits alike."""
        barrier()
        if is_rank_zero():
            rows, verdict = write_summary(self.run_dir, self.cfg.pruning.matching_tolerance)
            run_logger.finish(rows, verdict)
            if self.label:
                print(table_heading(self.label, self.run_dir))
            print(format_table(rows, verdict))
            skipped = run_skipped_images(self.run_dir)["count"]
            if skipped:
                log.warning("%d unreadable image(s) skipped in this run, named in %s", skipped, self.run_dir / SUMMARY_JSON)
            print(f"summary: {self.run_dir / SUMMARY_CSV}")
        barrier()
        rows, verdict = summary_rows(self.run_dir, self.cfg.pruning.matching_tolerance)
        return {"rows": rows, "verdict": verdict, "table": format_table(rows, verdict)}

    def run_branches(self) -> None:
        """``pruning.branches``: each control as a branch of this (finished) run, in ``branches/<method>/``."""
        for name in self.cfg.pruning.branches:
            overrides = {"pruning": {"method": name, "branches": [], "source_run": str(self.run_dir)}}
            LotteryRun(OmegaConf.merge(self.cfg, overrides), branch_dir(self.run_dir, name), label=name).run()

    def adopt_source_round_zero(self) -> None:
        """A branch's round 0 is its source run's: its files, the source's rewind point, this run's config."""
        ticket_dir, source_dir = round_dir(self.run_dir, 0), round_dir(self.source, 0)
        if is_rank_zero() and not is_complete(ticket_dir):
            ticket_dir.mkdir(parents=True, exist_ok=True)
            for path in source_dir.iterdir():
                if path.name not in OWN_ROUND_FILES and path.is_file():
                    link_or_copy(path, ticket_dir / path.name)
            source_rewind = rewind_point_file(self.source)
            assert source_rewind is not None, f"{self.source} has a finished round 0 but no rewind point"
            link_or_copy(source_rewind, self.run_dir / source_rewind.name)
            metrics = {**read_metrics(source_dir), "method": self.method, "source_run": str(self.source)}
            atomic_write_json(ticket_dir / METRICS_FILE, metrics)
            atomic_write_text(ticket_dir / ROUND_CONFIG, OmegaConf.to_yaml(self.cfg, resolve=True))
            mark_complete(ticket_dir)
        barrier()

    # ------------------------------------------------------ masks and rewinds
    def start_round(self, model: StyleTransferModule, index: int, target: float, state: RoundState) -> Masks:
        """Set the model's starting weights for round ``index`` (by the method) and return its masks."""
        if index == 0:
            return state.masks
        assert state.final_weights is not None and self.rewind_point is not None and self.dense_weights is not None
        inputs = RoundInputs(
            index=index,
            target=target,
            layerwise=bool(self.cfg.pruning.layerwise),
            rewind=self.rewind,
            scope_names=frozenset(state.masks),
            previous_masks=state.masks,
            previous_weights=state.final_weights,
            dense_weights=self.dense_weights,
            rewind_point=self.rewind_point,
            generator=torch.Generator().manual_seed(self.control_seed * 1_000 + index),
            fresh_state=lambda: self.fresh_scope_state(model, index),
            source_masks=load_round_masks(round_dir(self.source, index)) if self.strategy.follows_imp else None,
            rewind_model=lambda: self.holding(model, self.rewind_point),
            training_batch=lambda: self.stream_batch(int(self.cfg.pruning.rewind_step)),
            run_dir=self.run_dir,
            pruner=self.pruner,
        )
        masks = self.strategy.next_masks(inputs)
        model.load_state_dict(self.strategy.start_weights(inputs), strict=False)
        apply_masks(masked_parameters(model, masks), masks)
        return masks

    @staticmethod
    def holding(model: StyleTransferModule, weights: dict[str, torch.Tensor]) -> StyleTransferModule:
        """``model`` with ``weights`` loaded (for scoring them; the round then loads its own start)."""
        model.load_state_dict(weights, strict=False)
        return model

    def stream_batch(self, step: int) -> dict[str, torch.Tensor]:
        """Batch ``step`` of the training stream as rank 0 sees it, so every DDP rank scores the same batch."""
        assert self.datamodule is not None
        datamodule = self.datamodule
        datamodule.setup("fit")
        saved = datamodule.start_step, datamodule.trainer
        datamodule.start_step, datamodule.trainer = step, None
        try:
            return datamodule.decoded(next(iter(datamodule.train_dataloader())), torch.device("cpu"))
        finally:
            datamodule.start_step, datamodule.trainer = saved

    def fresh_scope_state(self, model: StyleTransferModule, index: int) -> dict[str, torch.Tensor]:
        """Newly initialised weights of the pruned parts, in the run's own encoder layout.

        Built as a random-weight model of the same architecture (PyTorch's
        default init, as at the start of training), seeded by the control seed
        and the round; its encoder convs are carried into the run's layout.
        """
        torch.manual_seed(self.control_seed * 1_000 + 500 + index)
        fresh = create_model(without_weight_files(self.cfg.model))  # new weights, not the released files
        state = {k: v for k, v in trainable_state(fresh).items() if part_of(k) != Part.encoder}
        state.update({f"encoder.{k}": v for k, v in model.encoder.conv_state_from(fresh.encoder).items()})
        return {k: v for k, v in state.items() if part_of(k) in self.scope}

    def inference_cost(self, model: StyleTransferModule, masks: Masks) -> dict[str, Any]:
        """FLOPs of one stylization at the eval size (dense, and of the slim model) and parameter counts.

        The dense count depends on the architecture and the size only, so it is
        counted once per run (:mod:`lottery_style.engine.cost`).
        """
        size = int(self.cfg.data.eval_size)
        if self._flops is None:
            self._flops = stylization_flops(model, size, self.device)
        slim = self.pruner.slimmed({name: p.detach() for name, p in model.named_parameters()}, masks)
        kept = self._flops if slim is None else stylization_flops(model, size, self.device, slim)
        return {"flops": self._flops, "flops_kept": kept, **parameter_counts(model)}

    # ------------------------------------------------------------- one round
    def fit_round(
        self,
        model: StyleTransferModule,
        datamodule: StylePairDataModule,
        index: int,
        masks: Masks,
        ticket_dir: Path,
        run_logger: RunLogger,
    ) -> dict[str, Any]:
        mask_callback = MaskCallback(masks)
        round_info = {"round": index, "method": self.method, "sparsity": self.pruner.sparsity(masks)}
        logger = run_logger.round_logger(index, round_info)
        initial = trainable_state(model) if index == 0 else None
        if index == 0:
            self.round_zero_watch = self.strategy.round_zero_callbacks(
                self.cfg, self.sparsities[1:], list(masks), ticket_dir, self.pruner
            )
        for segment in round_segments(self.rewind, self.cfg.pruning.rewind_step, self.cfg.training.steps, index):
            if index == 0 and segment.end < self.cfg.training.steps:
                self.train_to_rewind_step(model, datamodule, segment, mask_callback, ticket_dir, logger)
            else:
                self.fit_segment(model, datamodule, index, segment, mask_callback, ticket_dir, logger)
        if index == 0 and self.rewind_point is None:
            self.rewind_point = initial
        metrics = self.record(model, datamodule, index, mask_callback, ticket_dir)
        run_logger.end_round(index, metrics, ticket_dir)
        return metrics

    def train_to_rewind_step(
        self,
        model: StyleTransferModule,
        datamodule: StylePairDataModule,
        segment: Segment,
        mask_callback: MaskCallback,
        ticket_dir: Path,
        logger: Any,
    ) -> None:
        """Round 0's steps 0..k; the weights at k become the rewind point (kept on disk for a resume)."""
        if rewind_point_file(self.run_dir) is not None:  # a resumed round 0 that had passed step k
            self.rewind_point = load_rewind_point(self.run_dir)
            model.load_state_dict(self.rewind_point, strict=False)
            return
        self.fit_segment(model, datamodule, 0, segment, mask_callback, ticket_dir, logger)
        self.rewind_point = trainable_state(model)
        if is_rank_zero():
            save_rewind_point(self.run_dir, self.rewind_point)

    def fit_segment(
        self,
        model: StyleTransferModule,
        datamodule: StylePairDataModule,
        index: int,
        segment: Segment,
        mask_callback: MaskCallback,
        ticket_dir: Path,
        logger: Any,
    ) -> None:
        """One fit over ``segment``: fresh optimizer, the data stream and the LR schedule from its start."""
        last = checkpoint_dir(ticket_dir, segment.start) / LAST_CHECKPOINT
        model.lr_from, model.lr_hold = segment.lr_from, segment.hold_lr
        datamodule.start_step = segment.start
        start_fit(logger, segment.start)  # training metrics on the schedule's step
        trainer = self.build_trainer(ticket_dir, mask_callback, index, logger, segment)
        trainer.fit(model, datamodule=datamodule, ckpt_path=last if last.is_file() else None, weights_only=True)

    def build_trainer(
        self, ticket_dir: Path, mask_callback: MaskCallback, index: int, logger: Any, segment: Segment
    ) -> Trainer:
        """The Trainer of one fit: checkpoints every ``training.checkpoint_every`` steps for an exact resume."""
        hw, training = self.cfg.hardware, self.cfg.training
        checkpoint = ResumeCheckpoint(
            dirpath=checkpoint_dir(ticket_dir, segment.start),
            save_last=True,
            save_top_k=0,
            every_n_train_steps=training.checkpoint_every,
        )
        speed = SpeedOptions(training.channels_last, training.compile, training.keep_freed_memory)
        callbacks = [mask_callback, StepSeed(self.cfg.seed, segment.start), checkpoint, speed]
        if index == 0:
            callbacks += self.round_zero_watch
        if training.progress_bar:
            sparsity = self.pruner.sparsity(mask_callback.masks)
            run = f"[{self.label}]" if self.label else self.run_dir.name  # a branch as its round lines name it
            description = round_description(run, index, len(self.sparsities) - 1, sparsity)
            callbacks.append(RoundProgressBar(description, segment.start, training.steps))
        return Trainer(
            max_steps=segment.steps,
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
            enable_model_summary=bool(self.cfg.logger.verbose) and index == 0 and segment.start == 0,
            limit_val_batches=0,
            num_sanity_val_steps=0,
            use_distributed_sampler=False,
            deterministic=False,
        )

    def record(
        self,
        model: StyleTransferModule,
        datamodule: StylePairDataModule,
        index: int,
        mask_callback: MaskCallback,
        ticket_dir: Path,
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
            "method": self.method,
            "sparsity": self.pruner.sparsity(mask_callback.masks),  # of the pruner's unit: what the rate counts
            **self.pruner.record(mask_callback.masks),
            "sparsity_model": model_sparsity["total"],
            **{f"sparsity_{part}": model_sparsity["parts"].get(part, 0.0) for part in PARTS},
            "sparsity_layers": model_sparsity["layers"],
            "weight_source": model.weight_source.value,
            "mask_hashes": mask_callback.mask_hashes,  # one per DDP rank, all equal (checked at fit start)
            **self.inference_cost(model, mask_callback.masks),
            **errors,
            # The unreadable images met so far in this run, on every rank (each rank reads its own slice).
            SKIPPED_IMAGES: merged_record(entry for part in gathered(datamodule.skipped.entries()) for entry in part),
        }
        if is_rank_zero():
            if index == 0:
                save_rewind_point(self.run_dir, self.rewind_point)
            metrics["file_bytes"] = save_round(ticket_dir, trainable_state(model), mask_callback.masks).file_bytes
            atomic_write_json(ticket_dir / METRICS_FILE, metrics)
            atomic_write_text(ticket_dir / ROUND_CONFIG, OmegaConf.to_yaml(self.cfg, resolve=True))
            save_grid(model, datamodule.grid_batch(), ticket_dir / GRID_FILE, self.device)
            mark_complete(ticket_dir)
            shutil.rmtree(ticket_dir / CHECKPOINTS_DIR, ignore_errors=True)
        return metrics
