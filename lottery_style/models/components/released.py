"""Released reference checkpoints as starting weights: ``model.decoder.path`` and ``model.transform.path``.

The reference repositories publish their trained decoders and transforms as
plain state dicts under their own module names (docs/architectures.md lists the
repositories). Each architecture declares, per part, how those names map onto
its own (:class:`ReferenceLayout`); a file is loaded only when its keys are
exactly the layout's and every shape fits, because a half-loaded decoder
would train and be pruned without any sign of the mistake. The loaded weights
are round 0's starting point, so "rewind to init" rewinds to them.

A reference that saves one part in several files (AdaAttN's transform: its
``Transformer`` and its relu3_1 block, ``<epoch>_net_transformer.pth`` and
``<epoch>_net_adaattn_3.pth``) is given by its main file; the others are read
from beside it under the reference's own naming (:class:`FileBeside`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from lottery_style.core.config import Part
from lottery_style.models.components.vgg import WeightsError, first_shape_mismatch

RELEASED_PARTS = (Part.transform.value, Part.decoder.value)  # the parts a reference releases a file for (the encoder: model.encoder)
SHOWN_KEYS = 3  # keys named in an error message


@dataclass(frozen=True)
class FileBeside:
    """A file the reference saves beside the given one: the given name's ``ending`` replaced by ``replacement``.

    Its keys join the given file's under ``prefix`` (the reference's module
    name, e.g. ``net_adaattn_3.``), where the layout's renames pick them up.
    """

    ending: str  # e.g. "_net_transformer.pth"
    replacement: str  # e.g. "_net_adaattn_3.pth"
    prefix: str

    def path(self, given: Path) -> Path | None:
        """The file beside ``given`` (None: ``given`` is not named as the reference names it)."""
        if not given.name.endswith(self.ending):
            return None
        return given.with_name(given.name[: -len(self.ending)] + self.replacement)


@dataclass(frozen=True)
class ReferenceLayout:
    """How a reference repository names one part's weights in its released file (or files).

    ``renames`` are (reference prefix, our prefix) pairs, each ending in a dot
    (or empty: every key); ``ignored`` are reference prefixes of parameters
    our module does not have on purpose (a dead layer), dropped on load;
    ``beside`` are further files of the part, read from the given file's folder.
    """

    source: str  # the repository and file, for messages
    renames: tuple[tuple[str, str], ...]
    ignored: tuple[str, ...] = ()
    beside: tuple[FileBeside, ...] = ()

    def ours(self, key: str) -> str | None:
        """Our name for a reference key (None: no rename applies)."""
        for theirs, mine in self.renames:
            if key.startswith(theirs):
                return mine + key[len(theirs) :]
        return None

    def loads(self, key: str) -> bool:
        """Whether a reference key is loaded at all (not one of the ``ignored`` dead parameters)."""
        return not any(key.startswith(prefix) for prefix in self.ignored)

    def theirs(self, key: str) -> str:
        """The reference name of one of our keys, for naming what a file lacks."""
        for reference, mine in self.renames:
            if key.startswith(mine):
                return reference + key[len(mine) :]
        return key


def sequential_decoder(source: str) -> ReferenceLayout:
    """The standard decoder as the references save it: a bare ``nn.Sequential``, indices as in ``MirrorDecoder.body``."""
    return ReferenceLayout(f"{source} (a bare nn.Sequential: 1.weight ... 28.bias)", (("", "body."),))


def projection_renames(reference: str, ours: str, output: bool = True) -> tuple[tuple[str, str], ...]:
    """An attention block's f, g, h, out_conv (the references' names) onto query, key, value, output.

    ``output=False`` for a block without an output conv (AdaAttN's).
    """
    names = (("f", "query"), ("g", "key"), ("h", "value"), *((("out_conv", "output"),) if output else ()))
    return tuple((f"{reference}{theirs}.", f"{ours}{mine}.") for theirs, mine in names)


def sequential_renames(reference_names: tuple[str, ...], our_indices: tuple[int, ...], prefix: str) -> tuple[tuple[str, str], ...]:
    """Renames of named convs (``conv11``) onto the indices of one of our ``nn.Sequential`` (``body.1``)."""
    return tuple((f"{name}.", f"{prefix}{index}.") for name, index in zip(reference_names, our_indices, strict=True))


def _read_state(file: Path, named: str, source: str) -> dict[str, Any]:
    """One released state dict, or a one-line error that starts with ``named`` (how the user gave the file)."""
    if not file.is_file():
        raise WeightsError(f"{named} does not exist: expected {source}")
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001  (any unreadable file is the same user error)
        raise WeightsError(f"{named} is not a state dict torch.load can read ({type(error).__name__}): expected {source}") from None
    if not isinstance(state, dict):
        raise WeightsError(f"{named} holds a {type(state).__name__}, not a state dict: expected {source}")
    return state


def load_released(module: nn.Module, layout: ReferenceLayout | None, key: str, path: str) -> None:
    """Load a released file (and the files beside it) into ``module`` through ``layout``, or fail in one line."""
    file = Path(path).expanduser()
    if layout is None:
        raise WeightsError(f"{key}={file} is invalid: no reference releases this part in a layout this model can load")
    state = _read_state(file, f"{key}={file}", layout.source)
    for beside in layout.beside:
        other = beside.path(file)
        if other is None:
            raise WeightsError(f"{key}={file} is not named <epoch>{beside.ending}: expected {layout.source}")
        extra = _read_state(other, f"{other}, the file beside {key},", layout.source)
        state.update({beside.prefix + k: v for k, v in extra.items()})
    own = module.state_dict()
    mapped = {layout.ours(k): v for k, v in state.items() if layout.loads(k)}
    unexpected = [k for k in state if layout.loads(k) and layout.ours(k) not in own]
    missing = [layout.theirs(k) for k in own if k not in mapped]
    if missing or unexpected:
        raise WeightsError(
            f"{key}={file} does not fit {layout.source}: missing keys {_some(missing)}, unexpected keys {_some(unexpected)}"
        )
    mismatch = first_shape_mismatch(own, mapped)
    if mismatch:
        k, shape, expected = mismatch
        raise WeightsError(f"{key}={file} has shape {shape} for {layout.theirs(k)}: expected {expected} ({layout.source})")
    module.load_state_dict({k: mapped[k] for k in own})


def _some(keys: list[str]) -> str:
    return "none" if not keys else ", ".join(keys[:SHOWN_KEYS]) + (f" (+{len(keys) - SHOWN_KEYS} more)" if len(keys) > SHOWN_KEYS else "")


def without_weight_files(model_cfg: Any) -> DictConfig:
    """The model config with random VGG weights and no released files: the architecture alone, freshly initialised.

    For weights that come from elsewhere (a ticket) or must be new (a random re-initialisation).
    """
    released: dict[str, Any] = {part: {"path": None} for part in RELEASED_PARTS}
    return OmegaConf.merge(model_cfg, {"encoder": {"weights": "random", "path": None}}, released)

