"""A slim model on disk (``lottery-style export ROUND --slim``): a plain state dict and the slim config.

A slim model is its architecture with every prunable conv narrowed to the
channels a channel ticket keeps (:mod:`lottery_style.tools.slim` makes it).
The file is one ``torch.save`` of plain containers and tensors, written
atomically and read with ``weights_only=True`` (nothing is unpickled):

- ``format``: :data:`SLIM_FORMAT`, what tells this file from a Lightning checkpoint;
- ``model``: the model config, so the file alone rebuilds the architecture;
- ``channels``: the slim config, ``{conv weight name: [out, in]}`` channel counts of every prunable conv;
- ``state_dict``: the encoder, transform and decoder weights at those shapes;
- ``info``: the source ticket's method, round and sparsity when known.

Rebuilding needs no ticket: the architecture is built from ``model``, each
conv named in ``channels`` is narrowed to its counts
(:func:`~lottery_style.pruning.slimming.narrow_convs`),
and the state dict loads into it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import Tensor

from lottery_style.core.atomic import atomic_torch_save

SLIM_FORMAT = "lottery_style slim model v1"
Channels = dict[str, tuple[int, int]]  # conv weight name -> (output, input) channels


def write_slim_file(
    path: str | Path, model: Mapping[str, Any], channels: Channels, state: Mapping[str, Tensor], info: Mapping[str, Any]
) -> Path:
    """Write a slim model atomically (see the module docstring for what the file holds)."""
    payload = {
        "format": SLIM_FORMAT,
        "model": dict(model),
        "channels": {name: [int(out), int(into)] for name, (out, into) in channels.items()},
        "state_dict": {name: tensor.detach().cpu().contiguous() for name, tensor in state.items()},
        "info": dict(info),
    }
    return atomic_torch_save(payload, path)


def is_slim(loaded: Any) -> bool:
    """Whether a ``torch.load``-ed object is a slim model file's content."""
    return isinstance(loaded, dict) and loaded.get("format") == SLIM_FORMAT


def slim_channels(loaded: Mapping[str, Any], source: Path) -> Channels:
    """The slim config of a loaded slim file, checked to be ``{name: [out, in]}``."""
    channels = loaded.get("channels")
    if not isinstance(channels, dict) or not all(
        isinstance(counts, (list, tuple)) and len(counts) == 2 and all(isinstance(c, int) for c in counts)
        for counts in channels.values()
    ):
        raise ValueError(f"{source} is a slim model file with a bad 'channels' entry: expected {{conv: [out, in]}}")
    return {name: (out, into) for name, (out, into) in channels.items()}
