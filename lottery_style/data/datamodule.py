"""The LightningDataModule every run uses: seeded random training pairs and fixed evaluation pairs.

The training stream is a pure function of its seed (the replicate seed unless
``data.stream_seed`` fixes it) and the step, the same in every IMP round and
control, so tickets differ only in their weights and masks. A fit that starts
at step k (late rewinding) reads the stream from batch k on. The evaluation
pairs depend on ``data.eval_seed`` alone, so every replicate is judged on the
same pairs. It is sharded by the datamodule itself (global rank and world size from
the attached Trainer): build the Trainer with ``use_distributed_sampler=False``,
or Lightning would wrap the sampler and shard the stream a second time.
``data.batch_size`` is per rank. With ``data.decode=device`` the loader hands out
uncut batches, which :meth:`StylePairDataModule.on_after_batch_transfer` decodes
and cuts on each rank's own device (:mod:`lottery_style.data.device_decode`).

Unreadable images: the loader workers are separate processes, re-made for
every fit, so each batch carries the files its items found unreadable, and
:meth:`StylePairDataModule.decoded` adds them to :attr:`StylePairDataModule.skipped`
(with the evaluation files skipped at setup): one log warning per file for the
whole run (in DDP, per rank: each rank reads its own slice), and the record a
round writes into ``metrics.json``, gathered from every rank.

Resuming is bit-identical from checkpoints saved after a training batch
(``ModelCheckpoint(every_n_train_steps=...)``), mid-epoch or not: the loader's
position travels in the checkpoint. A checkpoint saved in ``on_train_epoch_end``
(``save_on_train_epoch_end=True``) is not: Lightning 2.6 restores that epoch's
batch counter and then cuts the next epoch short.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import LightningDataModule
from omegaconf import DictConfig, OmegaConf
from torch import Tensor
from torch.utils.data import DataLoader

from lottery_style.core.config import Decode
from lottery_style.data.device_decode import UncutBatch, collate_uncut, decode_batch
from lottery_style.data.images import DataError, NoImagesError, SkippedImages, list_images
from lottery_style.data.pairs import (
    SKIPPED,
    EvalPairs,
    EvalSpec,
    PairDataset,
    PairLoader,
    PairSampler,
    choose_eval_pairs,
    collate_pairs,
    pair_names,
)
from lottery_style.data.prepared import read_complete
from lottery_style.data.sample import sample_dirs

log = logging.getLogger(__name__)

_POSITIVE = (
    "load_size", "crop_size", "batch_size", "eval_contents", "eval_styles", "eval_size", "eval_crops", "eval_batch_size",
    "grid_pairs",
)  # fmt: skip


def check_data_config(cfg: DictConfig, steps_per_epoch: int) -> None:
    """One-line errors for folders left unset and sizes that cannot work, before any file is read."""
    for key in ("content_dir", "style_dir"):
        if OmegaConf.is_missing(cfg, key):
            raise DataError(f"data.{key} is not set: expected an image folder, or null for the bundled sample set")
    for key in _POSITIVE:
        if getattr(cfg, key) < 1:
            raise DataError(f"data.{key}={getattr(cfg, key)} must be at least 1")
    if cfg.num_workers < 0:
        raise DataError(f"data.num_workers={cfg.num_workers} must be 0 or more")
    if steps_per_epoch < 1:
        raise DataError(f"steps_per_epoch={steps_per_epoch} must be at least 1")
    if cfg.eval_load_size is not None and cfg.eval_load_size < cfg.eval_size:
        raise DataError(
            f"data.eval_load_size={cfg.eval_load_size} is smaller than data.eval_size={cfg.eval_size}: "
            "expected the evaluation crops to fit inside the resized image"
        )
    if cfg.load_size < cfg.crop_size:
        raise DataError(
            f"data.load_size={cfg.load_size} is smaller than data.crop_size={cfg.crop_size}: "
            "the random crop must fit inside the resized image"
        )


class StylePairDataModule(LightningDataModule):
    """Random content/style pairs from two folders, and ``eval_contents x eval_styles`` fixed test pairs.

    ``cfg`` is a ``DataConfig`` (or a DictConfig of one); an epoch is
    ``steps_per_epoch`` batches per rank. Folders left null use the bundled
    sample set. Without eval folders the eval images are held out of the
    training folders; with them, every image of the eval folders is kept out
    of training even when they lie inside the training folders, so the test
    error is always measured on unseen images. ``start_step`` is the step the
    next fit starts at: its first batch is batch ``start_step`` of the stream.
    """

    def __init__(self, cfg: Any, steps_per_epoch: int, stream_seed: int) -> None:
        super().__init__()
        self.cfg: DictConfig = cfg if isinstance(cfg, DictConfig) else OmegaConf.structured(cfg)
        check_data_config(self.cfg, steps_per_epoch)
        self.steps_per_epoch = steps_per_epoch
        self.stream_seed = stream_seed
        self.start_step = 0
        self.content_files: list[Path] = []
        self.style_files: list[Path] = []
        self.eval_content_files: list[Path] = []
        self.eval_style_files: list[Path] = []
        self.train_set: PairDataset | None = None
        self.eval_set: EvalPairs | None = None
        self.skipped = SkippedImages()  # every unreadable file this process met, for the run's records

    def prepare_data(self) -> None:
        # Lightning runs this on one process per node before the others call setup.
        if self.cfg.content_dir is None or self.cfg.style_dir is None:
            sample_dirs()

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:  # the same datamodule serves every round of a run
            return
        cfg = self.cfg
        sample = sample_dirs() if cfg.content_dir is None or cfg.style_dir is None else (None, None)
        content_dir = cfg.content_dir or sample[0]
        style_dir = cfg.style_dir or sample[1]
        contents, prepared_contents = self._listing(content_dir, "content")
        styles, prepared_styles = self._listing(style_dir, "style")
        content_source, content_pool = self._eval_pool(contents, content_dir, cfg.eval_content_dir, "content")
        style_source, style_pool = self._eval_pool(styles, style_dir, cfg.eval_style_dir, "style")
        spec = EvalSpec(cfg.eval_contents, cfg.eval_styles, cfg.eval_size, cfg.eval_crops, cfg.eval_load_size, cfg.eval_seed)
        pools = {"content": (content_source, content_pool), "style": (style_source, style_pool)}
        self.eval_content_files, self.eval_style_files, self.eval_set = choose_eval_pairs(spec, pools, self.skipped)
        excluded_contents = content_pool if cfg.eval_content_dir is not None else self.eval_content_files
        excluded_styles = style_pool if cfg.eval_style_dir is not None else self.eval_style_files
        self.content_files = self._training_files(contents, excluded_contents, f"content folder {content_dir}")
        self.style_files = self._training_files(styles, excluded_styles, f"style folder {style_dir}")
        prepared = {
            role: [listing[path] for path in files]
            for role, listing, files in (
                ("content", prepared_contents, self.content_files), ("style", prepared_styles, self.style_files)
            )
            if listing is not None
        }  # fmt: skip
        self.train_set = PairDataset(
            self.content_files, self.style_files, cfg.load_size, cfg.crop_size, self.stream_seed, cfg.decode, prepared
        )
        log.info(
            "data: %d content and %d style training images (%s, %s); %d x %d evaluation pairs",
            len(self.content_files), len(self.style_files), content_dir, style_dir,
            len(self.eval_set.contents), len(self.eval_set.styles),
        )  # fmt: skip

    def _listing(self, folder: str | Path, role: str) -> tuple[list[Path], dict[Path, Path | None] | None]:
        """The training folder's images in listing order, and for a prepared folder
        (:mod:`lottery_style.data.prepared`) the prepared file of each. The images of a prepared
        folder are its source's original files: evaluation reads those, as with the source folder."""
        key = f"data.{role}_dir"
        prepared = read_complete(folder, key, self.cfg.load_size, self.cfg.decode)
        if prepared is None:
            return list_images(folder, role), None
        sources = prepared.sources()
        return sources, dict(zip(sources, prepared.targets()))

    @staticmethod
    def _eval_pool(training: list[Path], training_dir: str, eval_dir: str | None, role: str) -> tuple[str, list[Path]]:
        """Where one side's eval images are chosen from (its name for errors, its files)."""
        if eval_dir is None:
            return f"{role} folder {training_dir}", training
        return f"eval {role} folder {eval_dir}", list_images(eval_dir, f"eval {role}")

    @staticmethod
    def _training_files(files: list[Path], held_out: list[Path], source: str) -> list[Path]:
        """The training files without any held-out evaluation image (compared as resolved paths)."""
        excluded = {path.resolve() for path in held_out}
        kept = [path for path in files if path.resolve() not in excluded]
        if not kept:
            raise NoImagesError(
                f"{source} has {len(files)} images, all held out for evaluation: "
                "lower data.eval_contents/eval_styles or give data.eval_content_dir/eval_style_dir"
            )
        return kept

    def _rank_and_world(self) -> tuple[int, int]:
        if self.trainer is None:
            return 0, 1
        return self.trainer.global_rank, self.trainer.world_size

    def train_dataloader(self) -> PairLoader:
        assert self.train_set is not None, "call setup() first"
        rank, world_size = self._rank_and_world()
        sampler = PairSampler(self.steps_per_epoch * self.cfg.batch_size, rank, world_size, self.start_step * self.cfg.batch_size)
        workers = self.cfg.num_workers
        return PairLoader(
            self.train_set,
            sampler,
            batch_size=self.cfg.batch_size,
            num_workers=workers,
            persistent_workers=workers > 0,
            collate_fn=collate_uncut if Decode(self.cfg.decode) is Decode.device else collate_pairs,
        )

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Lightning's hook on every rank once a batch is on that rank's device: there a ``data.decode=device``
        batch is decoded and cut (a DataModule hook: the data path stays out of the models)."""
        assert self.trainer is not None
        return self.decoded(batch, self.trainer.strategy.root_device)

    def decoded(self, batch: Any, device: torch.device) -> Any:
        """``batch`` ready for a model: its skipped files recorded, an uncut batch decoded and cut on ``device``
        (its files that fail to decode recorded too), any other batch as it is."""
        if isinstance(batch, UncutBatch):
            assert self.train_set is not None, "call setup() first"
            self.skipped.add(batch.skipped)
            cut = decode_batch(batch, self.train_set, device)
            self.skipped.add(self.train_set.take_skipped())  # the files re-drawn past, in this process
            return cut
        if isinstance(batch, dict) and SKIPPED in batch:
            self.skipped.add(batch[SKIPPED])
            return {key: value for key, value in batch.items() if key != SKIPPED}
        return batch

    def test_dataloader(self) -> DataLoader:
        """Every evaluation pair once, in :attr:`eval_pairs` order (in memory: no workers needed)."""
        assert self.eval_set is not None, "call setup() first"
        return DataLoader(self.eval_set, batch_size=self.cfg.eval_batch_size, shuffle=False)

    def grid_batch(self) -> dict[str, Tensor]:
        """The first ``grid_pairs`` evaluation pairs as one batch, for the content|style|output grid."""
        assert self.eval_set is not None, "call setup() first"
        return self.eval_set.first(self.cfg.grid_pairs)

    @property
    def eval_pairs(self) -> list[tuple[str, str]]:
        """(content file, style file) of every evaluation pair, in test-loader order, for the record."""
        assert self.eval_set is not None, "call setup() first"
        return pair_names(self.eval_content_files, self.eval_style_files, self.eval_set)
