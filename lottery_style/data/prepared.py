"""What a prepared training folder is on disk: its manifest, and the prepared file of each source image.

``lottery-style prepare-data`` (:mod:`lottery_style.data.prepare`) decodes,
converts and square-resizes every image of a folder once. Training then cuts
its crops from raw uint8 arrays instead of decoding JPEGs at every step. The
manifest keeps the source's file list in its order, unreadable files included
(marked as such), so index i of the prepared folder is index i of the source:
the same seed draws the same files and crops from either.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lottery_style.core.atomic import atomic_write_json
from lottery_style.core.config import Decode
from lottery_style.data.images import DataError

MANIFEST = "prepared.json"
SUFFIX = ".npy"  # raw uint8 [size, size, 3]: lossless, read as a memory map (docs/performance.md, Data loading)
# 2: images stored upright by their EXIF orientation and 16-bit ones at their true values; format 1 stored them as
# Pillow converted them (rotated photos as stored, 16-bit grey clipped to white), so it is prepared again.
FORMAT = 2


@dataclass
class PreparedFolder:
    """A prepared folder: ``files`` are the source's relative paths in listing order; ``unreadable``
    maps the relative paths that could not be decoded to the reason."""

    root: Path
    source: Path
    size: int
    files: list[str]
    unreadable: dict[str, str] = field(default_factory=dict)
    complete: bool = False

    def target(self, relative: str) -> Path:
        """The prepared file of source file ``relative``: the same relative path plus ``.npy``."""
        return self.root / f"{relative}{SUFFIX}"

    def sources(self) -> list[Path]:
        """The original files, in listing order: what evaluation reads and what a run records."""
        return [self.source / relative for relative in self.files]

    def targets(self) -> list[Path | None]:
        """The prepared file of each source file, None where the source was unreadable."""
        return [None if relative in self.unreadable else self.target(relative) for relative in self.files]

    def write(self) -> None:
        atomic_write_json(self.root / MANIFEST, {
            "format": FORMAT, "source": str(self.source), "size": self.size, "resize": "square, bilinear (PIL)",
            "complete": self.complete, "files": self.files, "unreadable": self.unreadable,
        })  # fmt: skip


def is_prepared(folder: str | Path) -> bool:
    return (Path(folder).expanduser() / MANIFEST).is_file()


def read_prepared(folder: str | Path) -> PreparedFolder | None:
    """The folder's manifest, or None when ``folder`` is not a prepared folder."""
    root = Path(folder).expanduser()
    if not is_prepared(root):
        return None
    data: dict[str, Any] = json.loads((root / MANIFEST).read_text())
    if data.get("format") != FORMAT:
        raise DataError(
            f"{root / MANIFEST} has format={data.get('format')}: expected {FORMAT} (rotated and 16-bit images "
            f"loaded as shown); delete {root} and prepare it again"
        )
    return PreparedFolder(
        root,
        Path(data["source"]),
        int(data["size"]),
        list(data["files"]),
        dict(data["unreadable"]),
        bool(data["complete"]),
    )


def read_complete(folder: str | Path, key: str, load_size: int, decode: Decode) -> PreparedFolder | None:
    """The prepared folder a training folder config value names (None for an ordinary folder), checked
    to be finished, of the run's load size and read with ``data.decode=pil``, with a one-line error naming
    ``key`` otherwise."""
    prepared = read_prepared(folder)
    if prepared is None:
        return None
    if Decode(decode) is not Decode.pil:
        raise DataError(
            f"data.decode={decode} does not apply to {key}={folder}, a prepared folder "
            "(resized once from full decodes): expected data.decode=pil"
        )
    if not prepared.complete:
        raise DataError(
            f"{key}={folder} is a prepared folder whose preparation has not finished ({MANIFEST}: complete=false): "
            f"expected a finished one; run `lottery-style prepare-data {prepared.source} {folder}` again to finish it"
        )
    if prepared.size != load_size:
        raise DataError(
            f"{key}={folder} was prepared at size {prepared.size} but data.load_size={load_size}: "
            f"expected data.load_size={prepared.size}, or a folder prepared with --size {load_size}"
        )
    return prepared
