"""``lottery-style prepare-data SRC DST --size N``: decode, convert and square-resize a training folder once.

A GPU step at the paper's scale takes milliseconds while decoding a WikiArt
JPEG takes tens of them (docs/performance.md, Data loading): preparing the folder once moves
that work out of every epoch. Each image becomes ``DST/<relative path>.npy``,
the exact array training would have resized it to (:func:`square_resize`), so
crops from the prepared folder equal crops from the source. The manifest is
written first (``complete: false``) and finished last, a prepared file appears
only when complete (atomic rename), and existing ones are skipped: an
interrupted preparation continues where it stopped when run again.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from multiprocessing import Pool
from pathlib import Path

import numpy as np
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from lottery_style.core.atomic import atomic_write
from lottery_style.data.crops import square_resize
from lottery_style.data.images import _UNREADABLE, DataError, list_images, open_rgb
from lottery_style.data.prepared import PreparedFolder, read_prepared


@dataclass(frozen=True)
class PrepareResult:
    """What one call did: files written now, files already there from an earlier call, unreadable files."""

    written: int
    already: int
    unreadable: int


def prepare_one(task: tuple[Path, Path, int]) -> str | None:
    """Write the prepared array of one file; the reason it is unreadable, or None."""
    source, target, size = task
    try:
        image = square_resize(open_rgb(source), size)
    except _UNREADABLE as error:
        return f"{type(error).__name__}: {error}"
    atomic_write(target, lambda handle: np.save(handle, np.asarray(image)))
    return None


def _manifest(source: Path, target: Path, size: int) -> PreparedFolder:
    """The manifest to fill: a new one, or the unfinished or finished one already in ``target``, if it matches."""
    files = [path.relative_to(source).as_posix() for path in list_images(source, "source")]
    existing = read_prepared(target)
    if existing is None:
        return PreparedFolder(target, source, size, files)
    if existing.size != size:
        raise DataError(
            f"--size {size} differs from {target}'s size {existing.size}: "
            f"expected --size {existing.size} or another DST"
        )
    if existing.source != source:
        raise DataError(
            f"SRC {source} differs from the source {existing.source} that {target} was prepared from: "
            "expected that SRC or another DST"
        )
    return PreparedFolder(target, source, size, files)


def prepare_folder(
    source: str | Path, target: str | Path, size: int, workers: int | None = None, progress: bool = True
) -> PrepareResult:
    """Prepare every image under ``source`` into ``target`` at ``size``, over ``workers`` processes
    (default: every core)."""
    if size < 1:
        raise DataError(f"--size {size} is invalid: expected a positive load size in pixels")
    source, target = Path(source).expanduser().resolve(), Path(target).expanduser().resolve()
    if target == source or target.is_relative_to(source):
        raise DataError(
            f"DST {target} lies inside SRC {source}: expected a folder outside it (its files would be listed as images)"
        )
    manifest = _manifest(source, target, size)
    target.mkdir(parents=True, exist_ok=True)
    manifest.write()
    tasks = [(source / rel, manifest.target(rel), size) for rel in manifest.files if not manifest.target(rel).is_file()]
    unreadable: dict[str, str] = {}
    columns = (
        TextColumn("prepare-data"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[bad]} unreadable"),
        TimeRemainingColumn(),
    )
    with Pool(workers or os.cpu_count() or 1) as pool, Progress(*columns, disable=not progress) as bar:
        job = bar.add_task("prepare", total=len(tasks), bad=0)
        for (path, _, _), reason in zip(tasks, pool.imap(prepare_one, tasks, chunksize=4)):
            if reason is not None:
                unreadable[path.relative_to(source).as_posix()] = reason
            bar.update(job, advance=1, bad=len(unreadable))
    manifest.unreadable, manifest.complete = unreadable, True
    manifest.write()
    return PrepareResult(len(tasks) - len(unreadable), len(manifest.files) - len(tasks), len(unreadable))
