"""Atomic file writes: a crash mid-write must never leave a half-written ticket or summary.

Everything is written to a temporary file in the target folder and renamed over
the target, which POSIX guarantees to be atomic on one file system. The file's
data is flushed to disk before the rename and the folder's entry after it, so
that after a power loss the target holds either its old or its new content.

The temporary file is made by ``mkstemp``, which creates it readable by its
owner only (0600); it is given the mode a plain ``open()`` would give the new
file (0666 less the process's umask) before the rename, so that teammates on a
shared cluster can read tickets and records as the user's umask intends.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO, Protocol

import torch

PROC_STATUS = Path("/proc/self/status")
# A folder's fsync is refused by some file systems (network ones): nothing more can be done there.
UNSYNCABLE_FOLDER = (errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EBADF, errno.EACCES)


def current_umask() -> int:
    """The process's umask, read without changing it where Linux shows it (``/proc/self/status``, Linux >= 4.7).

    Elsewhere (macOS) the only way to read it is to set it and put it back
    (``os.umask``), which is not thread-safe: another thread creating a file in
    between would get the temporary mask 0o022. Read anew on each call, so a
    umask the program changes later is honoured.
    """
    try:
        for line in PROC_STATUS.read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split(":", 1)[1].strip(), 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def file_mode() -> int:
    """The permission bits ``open(path, "w")`` gives a new file under the current umask."""
    return 0o666 & ~current_umask()


def folder_mode() -> int:
    """The permission bits ``mkdir`` gives a new folder under the current umask."""
    return 0o777 & ~current_umask()


def sync_folder(folder: Path) -> None:
    """Flush ``folder``'s entries (a rename into it) to disk; a file system that cannot is left as it is."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError as error:
        if error.errno in UNSYNCABLE_FOLDER:
            return
        raise
    try:
        os.fsync(fd)
    except OSError as error:
        if error.errno not in UNSYNCABLE_FOLDER:
            raise
    finally:
        os.close(fd)


def atomic_write(path: str | Path, write: Callable[[BinaryIO], None]) -> Path:
    """Call ``write`` on a temporary file beside ``path``, then rename it into place with the umask's mode."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, file_mode())
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    sync_folder(path.parent)
    return path


def atomic_torch_save(obj: Any, path: str | Path) -> Path:
    return atomic_write(path, lambda handle: torch.save(obj, handle))


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    return atomic_write(path, lambda handle: handle.write(data))


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def atomic_copy(source: str | Path, target: str | Path) -> Path:
    """A copy of ``source`` at ``target``, written like every other file (the umask's mode, never half-written)."""
    with open(source, "rb") as opened:
        return atomic_write(target, lambda handle: shutil.copyfileobj(opened, handle))


class SavesFigures(Protocol):
    def savefig(self, fname: Any, **kwargs: Any) -> Any: ...


def atomic_savefig(figure: SavesFigures, path: str | Path, dpi: int = 120) -> Path:
    """A matplotlib figure written atomically, in the format its file name's suffix names (``.png``)."""
    suffix = Path(path).suffix.lstrip(".").lower() or "png"
    return atomic_write(path, lambda handle: figure.savefig(handle, format=suffix, dpi=dpi))


def load_tensors(path: str | Path) -> Any:
    """Load a ``torch.save`` file (an old run's tickets); only tensors and plain containers are accepted."""
    return torch.load(path, map_location="cpu", weights_only=True)
