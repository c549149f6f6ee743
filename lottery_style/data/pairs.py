"""Random training pairs that depend only on (seed, global index), and the fixed evaluation pairs.

IMP re-trains the same network many times and resumes interrupted rounds, and
a ticket is judged against the dense run, so the data a step sees must be a
pure function of where that step is in the stream: never of worker processes,
of the order batches were fetched in, or of whether the run was interrupted.
Every item is therefore drawn from its own generator seeded with
``(seed, global index)``, and a sampler hands out global indices so that each
rank of a DDP run reads its own disjoint slice of one stream.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torchvision.transforms.functional as TF
from PIL import Image
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler, default_collate

from lottery_style.core.config import Decode
from lottery_style.data.crops import CropSource, PreparedCrops, file_source
from lottery_style.data.images import ImageReader, NoImagesError, SkippedFile, SkippedImages


class PairSampler(Sampler[int]):
    """Global indices of one rank: ``(first + epoch*L + k)*world + rank`` for k < L.

    ``first`` is the per-rank sample the fit starts at (``start step x batch``):
    a ticket rewound to step k reads the stream where the dense run was at step k.

    ``set_epoch`` is called by Lightning at every epoch start. ``start`` is the
    position in the epoch where the next pass begins: 0, except after ``resume``
    from a mid-epoch checkpoint.
    """

    def __init__(self, samples_per_epoch: int, rank: int = 0, world_size: int = 1, first: int = 0) -> None:
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is outside a world of size {world_size}")
        self.samples_per_epoch = samples_per_epoch
        self.first = first
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0
        self.start = 0

    def set_epoch(self, epoch: int) -> None:
        if epoch != self.epoch:
            self.start = 0
        self.epoch = epoch

    def resume(self, epoch: int, consumed: int) -> None:
        """Continue epoch ``epoch`` after its first ``consumed`` samples."""
        self.epoch = epoch
        self.start = consumed

    def __len__(self) -> int:
        return self.samples_per_epoch

    def __iter__(self) -> Iterator[int]:
        # A generator: the epoch is read at the first index, i.e. after Lightning's set_epoch,
        # even though Lightning creates the iterator before calling it.
        first, self.start = self.start, 0
        base = self.first + self.epoch * self.samples_per_epoch
        for k in range(first, self.samples_per_epoch):
            yield (base + k) * self.world_size + self.rank


class PairLoader(DataLoader):
    """A DataLoader over a :class:`PairSampler` that Lightning can checkpoint and resume mid-epoch.

    Lightning saves ``state_dict()`` with the loop state and calls
    ``load_state_dict`` before the first iteration after a restart.
    """

    sampler: PairSampler

    def __init__(self, dataset: Dataset, sampler: PairSampler, **kwargs: Any) -> None:
        super().__init__(dataset, sampler=sampler, **kwargs)
        self._epoch = sampler.epoch
        self._served = 0  # batches handed out in the current epoch

    def __iter__(self) -> Iterator[Any]:  # type: ignore[override]
        # Also a generator, so worker processes start prefetching only after set_epoch.
        self._epoch = self.sampler.epoch
        self._served = self.sampler.start // self.batch_size
        for batch in super().__iter__():
            self._served += 1
            yield batch

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self._epoch, "batches": self._served}

    def load_state_dict(self, state: dict[str, int]) -> None:
        epoch, batches = state["epoch"], state["batches"]
        if batches >= len(self):
            epoch, batches = epoch + 1, 0
        self.sampler.resume(epoch, batches * self.batch_size)


@dataclass(frozen=True)
class Draw:
    """One side (content or style) of a training pair: which file, where the crop sits, the crop
    (for ``Decode.device``: the uncut image, :func:`~lottery_style.data.crops.read_uncut`)."""

    index: int
    top: int
    left: int
    image: Tensor | np.ndarray


STREAMS = {"content": 0, "style": 1}  # each side of an item draws from its own generator
SKIPPED = "skipped"  # the batch key of the files skipped while drawing its items (SkippedFile entries)


class PairDataset(Dataset):
    """Item ``g`` is an independent random content crop and style crop, drawn from ``(seed, g)`` alone.

    Each side resizes to a square ``load_size`` (aspect distorted, as the
    reference training code does), then crops ``crop_size`` at random
    (:mod:`lottery_style.data.crops`: ``decode`` says how original files are
    decoded; a side listed in ``prepared``, the prepared file of each of its
    files, is sliced from its prepared folder instead). An unreadable file is
    replaced by the next draw of the same generator, so the replacement is as
    deterministic as the original choice. With ``Decode.device`` an item is its
    global index and its two uncut draws, collated and cut by
    :mod:`lottery_style.data.device_decode`.

    Every item also carries the files found unreadable while drawing it
    (:data:`SKIPPED`): a loader worker cannot tell the run, so the skip travels
    with the data to the main process, where the datamodule records it.
    """

    def __init__(
        self,
        content_files: Sequence[Path],
        style_files: Sequence[Path],
        load_size: int,
        crop_size: int,
        seed: int,
        decode: Decode = Decode.pil,
        prepared: Mapping[str, Sequence[Path | None]] | None = None,
    ) -> None:
        self.files = {"content": list(content_files), "style": list(style_files)}
        prepared = prepared or {}
        self.sources: dict[str, CropSource] = {
            role: PreparedCrops(role, files, prepared[role], crop_size)
            if role in prepared
            else file_source(role, files, load_size, crop_size, decode)
            for role, files in self.files.items()
        }
        self.uncut = Decode(decode) is Decode.device
        self.load_size = load_size
        self.crop_size = crop_size
        self.seed = seed

    def draw(self, index: int) -> tuple[Draw, Draw]:
        """The content and the style side of item ``index``, each from its own generator."""
        return self._draw("content", index), self._draw("style", index)

    def redraw(self, role: str, index: int, file: int, reason: str) -> Draw:
        """Side ``role`` of item ``index`` again, its drawn ``file`` having failed to decode after the draw
        (``Decode.device`` decodes after collation): the file is skipped (for :meth:`take_skipped`, with
        ``reason``) as every path does, and the same generator draws on past it, as ``pil``'s draw did."""
        reader, path = self.sources[role].reader, self.files[role][file]
        if path not in reader.unreadable:  # a loader worker, unaware of it, may draw it again
            reader.skip(path, reason)
        return self._draw(role, index)

    def _draw(self, role: str, index: int) -> Draw:
        rng = np.random.default_rng([self.seed, index, STREAMS[role]])
        source = self.sources[role]
        image = None
        while image is None:
            choice = int(rng.integers(len(source)))
            image = source.open(choice)
        top, left = (int(v) for v in rng.integers(0, self.load_size - self.crop_size + 1, size=2))
        return Draw(choice, top, left, source.crop(image, top, left))

    def take_skipped(self) -> list[SkippedFile]:
        """The files both sides found unreadable since the last call."""
        return [skip for source in self.sources.values() for skip in source.reader.take_new()]

    def __getitem__(self, index: int) -> dict[str, Any] | tuple[int, Draw, Draw, list[SkippedFile]]:
        content, style = self.draw(index)
        if self.uncut:
            return index, content, style, self.take_skipped()
        return {"content": content.image, "style": style.image, SKIPPED: self.take_skipped()}


def collate_pairs(items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The loader's ``collate_fn`` for crops: the images stacked, the items' skipped files in one list."""
    batch = default_collate([{role: item[role] for role in STREAMS} for item in items])
    return {**batch, SKIPPED: [skip for item in items for skip in item[SKIPPED]]}


def square_image(image: Image.Image, size: int) -> Tensor:
    """Uint8 [3, size, size]: shorter side to ``size``, then the centre, so every eval image batches."""
    image = TF.resize(image, size, interpolation=TF.InterpolationMode.BILINEAR)
    return TF.pil_to_tensor(TF.center_crop(image, [size, size]))


def eval_views(image: Image.Image, size: int, load_size: int, crops: int, rng: np.random.Generator) -> list[Tensor]:
    """Fixed views of one held-out image, uint8 [3, size, size] each.

    One view is the centre square at ``size`` (the whole short side). Several
    views are crops at positions drawn once from the evaluation seed, from the
    image with its shorter side resized to ``load_size``: more pairs from few
    held-out images, each showing a part of the image as a training crop does.
    """
    if crops == 1:
        return [square_image(image, size)]
    image = TF.resize(image, load_size, interpolation=TF.InterpolationMode.BILINEAR)
    width, height = image.size
    views = []
    for _ in range(crops):
        top, left = int(rng.integers(0, height - size + 1)), int(rng.integers(0, width - size + 1))
        views.append(TF.pil_to_tensor(TF.crop(image, top, left, size, size)))
    return views


def choose_readable(
    files: Sequence[Path],
    count: int,
    size: int,
    seed: Sequence[int],
    role: str,
    source: str,
    crops: int = 1,
    load_size: int | None = None,
    skipped: SkippedImages | None = None,
) -> tuple[list[Path], Tensor]:
    """``count`` files in a seeded random order, skipping unreadable ones (recorded in ``skipped``), and
    ``crops`` fixed views of each.

    Returns one file entry per view (a file repeated ``crops`` times) and the views stacked.
    Raises a one-line error naming ``source`` (the folder) when it cannot supply ``count`` readable images.
    """
    if len(files) < count:
        raise NoImagesError(f"{source} has {len(files)} images, {count} needed for evaluation")
    reader = ImageReader(role, len(files))
    rng = np.random.default_rng(seed)
    crop_rng = np.random.default_rng([*seed, crops])
    chosen: list[Path] = []
    images: list[Tensor] = []
    for position in rng.permutation(len(files)):
        image = reader.read(files[position])
        if skipped is not None:
            skipped.add(reader.take_new())
        if image is not None:
            views = eval_views(image, size, load_size or size, crops, crop_rng)
            chosen += [files[position]] * len(views)
            images += views
            if len(chosen) == count * crops:
                return chosen, torch.stack(images)
    raise NoImagesError(f"{source} has {len(chosen) // crops} readable images, {count} needed for evaluation")


@dataclass(frozen=True)
class EvalSpec:
    """What fixes a set of evaluation pairs besides the two folders: how many images of each side, the
    views' size, fixed crops per image and the shorter side before cropping, and the seed that picks them.
    Training (``data.eval_*``) and ``lottery-style evaluate`` choose their pairs through it alike."""

    contents: int
    styles: int
    size: int
    crops: int
    load_size: int | None
    seed: int


def choose_eval_pairs(
    spec: EvalSpec, pools: Mapping[str, tuple[str, Sequence[Path]]], skipped: SkippedImages | None = None
) -> tuple[list[Path], list[Path], EvalPairs]:
    """The fixed evaluation pairs from ``pools`` (per side: the folder's name for errors, its files): the chosen
    content files, style files (one entry per view) and the pairs, each side drawn from its own seeded stream."""
    chosen = {}
    for role, stream in STREAMS.items():
        source, files = pools[role]
        count = spec.contents if role == "content" else spec.styles
        chosen[role] = choose_readable(
            files, count, spec.size, (spec.seed, stream), f"eval {role}", source, spec.crops, spec.load_size, skipped
        )
    (content_files, contents), (style_files, styles) = chosen["content"], chosen["style"]
    return content_files, style_files, EvalPairs(contents, styles)


def pair_names(content_files: Sequence[Path], style_files: Sequence[Path], pairs: EvalPairs) -> list[tuple[str, str]]:
    """(content file, style file) of every evaluation pair, in evaluation order, for the record."""
    return [(str(content_files[c]), str(style_files[s])) for c, s in pairs.order]


def pair_order(contents: int, styles: int) -> list[tuple[int, int]]:
    """Every (content, style) pair once, in diagonals: the first pairs differ in both content and style.

    Pair p is content ``p % contents`` with style ``(p % contents + p // contents) % styles``, so a grid
    of the first few pairs shows several contents and several styles instead of one content.
    """
    return [(p % contents, (p % contents + p // contents) % styles) for p in range(contents * styles)]


class EvalPairs(Dataset):
    """The fixed evaluation set: every chosen content with every chosen style, held in memory as uint8."""

    def __init__(self, contents: Tensor, styles: Tensor) -> None:
        self.contents = contents
        self.styles = styles
        self.order = pair_order(len(contents), len(styles))

    def __len__(self) -> int:
        return len(self.order)

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        content, style = self.order[index]
        return {"content": self.contents[content].float() / 255, "style": self.styles[style].float() / 255}

    def first(self, count: int) -> dict[str, Tensor]:
        """The first ``count`` pairs as one batch."""
        items = [self[i] for i in range(min(count, len(self)))]
        return {key: torch.stack([item[key] for item in items]) for key in ("content", "style")}

