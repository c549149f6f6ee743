"""A slim model on disk (``lottery-style export ROUND --slim``): a plain state dict and the slim config.

A slim model is its architecture with every prunable conv narrowed to the
channels a channel ticket keeps (:mod:`lottery_style.tools.slim` makes it).
The file is a safetensors file, written atomically, that any safetensors reader
opens (nothing is unpickled): its tensors are the encoder, transform and decoder
weights at the narrowed shapes, under their state-dict names; its metadata
(string values, JSON-encoded) holds

- ``format``: :data:`SLIM_FORMAT`, what tells this file from a ticket file;
- ``model``: the model config, so the file alone rebuilds the architecture;
- ``channels``: the slim config, ``{conv weight name: [out, in]}`` channel counts of every prunable conv;
- ``info``: the source ticket's method, round and sparsity when known.

Rebuilding needs no ticket: the architecture is built from ``model``, each
conv named in ``channels`` is narrowed to its counts
(:func:`~lottery_style.pruning.slimming.narrow_convs`),
and the state dict loads into it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from safetensors import SafetensorError, safe_open
from safetensors.torch import save
from torch import Tensor

from lottery_style.core.atomic import atomic_write_bytes

SLIM_FORMAT = "lottery_style slim model v1"
Channels = dict[str, tuple[int, int]]  # conv weight name -> (output, input) channels
_JSON_KEYS = ("model", "channels", "info")


def write_slim_file(
    path: str | Path, model: Mapping[str, Any], channels: Channels, state: Mapping[str, Tensor], info: Mapping[str, Any]
) -> Path:
    """Write a slim model atomically (see the module docstring for what the file holds)."""
    metadata = {
        "format": SLIM_FORMAT,
        "model": json.dumps(dict(model)),
        "channels": json.dumps({name: [int(out), int(into)] for name, (out, into) in channels.items()}),
        "info": json.dumps(dict(info)),
    }
    tensors = {name: tensor.detach().cpu().contiguous().clone() for name, tensor in state.items()}
    return atomic_write_bytes(path, save(tensors, metadata=metadata))


def read_slim_file(path: str | Path) -> dict[str, Any] | None:
    """A slim model file's content (``format``, ``model``, ``channels``, ``info``, ``state_dict``), or None when
    ``path`` is not a safetensors file whose metadata names :data:`SLIM_FORMAT`."""
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            if metadata.get("format") != SLIM_FORMAT:
                return None
            state = {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118 (not a dict)
    except (SafetensorError, OSError):
        return None
    try:
        decoded = {key: json.loads(metadata[key]) for key in _JSON_KEYS}
    except (KeyError, json.JSONDecodeError):
        raise ValueError(f"{path} is a slim model file with bad metadata: expected JSON {', '.join(_JSON_KEYS)}") from None
    return {"format": SLIM_FORMAT, **decoded, "state_dict": state}


def slim_channels(loaded: Mapping[str, Any], source: Path) -> Channels:
    """The slim config of a loaded slim file, checked to be ``{name: [out, in]}``."""
    channels = loaded.get("channels")
    if not isinstance(channels, dict) or not all(
        isinstance(counts, (list, tuple)) and len(counts) == 2 and all(isinstance(c, int) for c in counts)
        for counts in channels.values()
    ):
        raise ValueError(f"{source} is a slim model file with a bad 'channels' entry: expected {{conv: [out, in]}}")
    return {name: (out, into) for name, (out, into) in channels.items()}
