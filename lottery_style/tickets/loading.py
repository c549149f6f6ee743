"""Opening a ticket for use: a round folder, a compact export file, a slim model file or a Lightning checkpoint -> model.

The four forms store weights differently but each carries the model config it
was trained with (``round_XX/config.yaml``, the export header's metadata, the
slim file's ``model``, the checkpoint's ``hyper_parameters["model"]``), so the architecture always comes
from the ticket itself and a user's ``--model`` can only be checked against it.
The model is built with random VGG weights and then overwritten by the
ticket's encoder, transform and decoder: stylizing needs no pretrained weights
and never downloads anything. The frozen loss VGG is not part of a ticket.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException
from torch import Tensor

from lottery_style.core.config import PART_PREFIXES
from lottery_style.models import MODEL_REGISTRY, StyleTransferModule, create_model
from lottery_style.models.components.released import without_weight_files
from lottery_style.models.components.vgg import Layout, VGGEncoder
from lottery_style.pruning.slimming import narrow_convs
from lottery_style.tickets.export import (
    ExportStats,
    export_metadata,
    export_ticket,
    is_ticket_file,
    load_ticket_export,
)
from lottery_style.tickets.paths import DONE, LEGACY_MASKS_FILE, METRICS_FILE, ROUND_CONFIG, TICKET_FILE, round_dir
from lottery_style.tickets.slim_file import Channels, read_slim_file, slim_channels
from lottery_style.tickets.storage import has_round_weights, read_metrics, read_round

TICKET_FORMS = "a round folder (round_XX/), a ticket export file, a slim model file or a Lightning .ckpt"


class TicketError(ValueError):
    """A ticket path that cannot be used; the one-line message names the path and what was expected."""


@dataclass
class TicketParts:
    """What a ticket file holds, before any model is built."""

    model_cfg: DictConfig
    state: dict[str, Tensor]  # encoder/transform/decoder weights only
    masks: dict[str, Tensor] | None = None
    info: dict[str, Any] = field(default_factory=dict)  # method, round, sparsity when known
    channels: Channels | None = None  # a slim model's (out, in) channels per conv; None: the architecture's own


# ----------------------------------------------------------------- reading
def _trainable(state: dict[str, Tensor]) -> dict[str, Tensor]:
    return {k: v for k, v in state.items() if k.startswith(PART_PREFIXES)}


def read_round_folder(folder: Path) -> TicketParts:
    if round_dir(folder, 0).is_dir():
        raise TicketError(f"{folder} is a run folder: pass one of its round folders, e.g. {round_dir(folder, 0)}")
    missing = [name for name in (ROUND_CONFIG, DONE) if not (folder / name).is_file()]
    if not has_round_weights(folder):
        missing.insert(0, TICKET_FILE)
    if missing:
        raise TicketError(f"{folder} is not a finished round folder: it has no {', '.join(missing)}")
    run_cfg = OmegaConf.load(folder / ROUND_CONFIG)
    if "model" not in run_cfg:
        raise TicketError(f"{folder / ROUND_CONFIG} has no 'model' section: expected the resolved run config")
    metrics = read_metrics(folder) if (folder / METRICS_FILE).is_file() else {}
    try:
        weights, masks = read_round(folder)
    except ValueError as error:
        raise TicketError(str(error)) from None
    info = {key: metrics[key] for key in ("method", "round", "sparsity") if key in metrics}
    return TicketParts(run_cfg.model, _trainable(weights), masks, info)


def read_export_file(path: Path) -> TicketParts:
    try:
        metadata = export_metadata(path)
        state, masks = load_ticket_export(path)
    except ValueError as error:
        raise TicketError(str(error)) from None
    if not isinstance(metadata.get("model"), dict):
        raise TicketError(f"{path} was exported without its model config: re-export it with `lottery-style export`")
    info = {key: metadata[key] for key in ("method", "round", "sparsity") if key in metadata}
    return TicketParts(OmegaConf.create(metadata["model"]), _trainable(state), masks, info)


def read_checkpoint(path: Path) -> TicketParts:
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError) as error:
        raise TicketError(f"{path} is not {TICKET_FORMS} (torch.load failed: {type(error).__name__})") from None
    model = checkpoint.get("hyper_parameters", {}).get("model") if isinstance(checkpoint, dict) else None
    if not isinstance(model, dict) or "state_dict" not in checkpoint:
        raise TicketError(f"{path} is not a lottery-style Lightning checkpoint: no hyper_parameters['model']")
    return TicketParts(OmegaConf.create(model), _trainable(checkpoint["state_dict"]))


def read_slim(loaded: dict[str, Any], path: Path) -> TicketParts:
    """A slim model file's parts (:mod:`lottery_style.tickets.slim_file`): no masks, the narrowed convs' counts."""
    if not isinstance(loaded.get("model"), dict) or not isinstance(loaded.get("state_dict"), dict):
        raise TicketError(f"{path} is a slim model file without its 'model' config or 'state_dict'")
    try:
        channels = slim_channels(loaded, path)
    except ValueError as error:
        raise TicketError(str(error)) from None
    info = loaded.get("info") if isinstance(loaded.get("info"), dict) else {}
    return TicketParts(OmegaConf.create(loaded["model"]), _trainable(loaded["state_dict"]), None, info, channels)


def read_ticket(path: str | Path) -> TicketParts:
    """The model config and weights of a ticket in any of its four forms."""
    path = Path(path).expanduser()
    if not path.exists():
        raise TicketError(f"ticket {path} does not exist: expected {TICKET_FORMS}")
    if path.is_dir():
        return read_round_folder(path)
    try:
        slim = read_slim_file(path)
    except ValueError as error:
        raise TicketError(str(error)) from None
    if slim is not None:
        return read_slim(slim, path)
    return read_export_file(path) if is_ticket_file(path) else read_checkpoint(path)


# ---------------------------------------------------------------- building
def _encoder_layout(state: dict[str, Tensor]) -> Layout:
    """The VGG layout the ticket was trained in: only the normalised layout starts with a 1x1 conv."""
    first = state.get("encoder.body.0.weight")
    return Layout.torchvision if first is not None and first.shape[-1] != 1 else Layout.normalised


def _use_layout(model: StyleTransferModule, layout: Layout) -> None:
    """Swap the random VGGs for ones of ``layout`` (a torchvision-VGG ticket), without fetching weights."""
    if layout is Layout.normalised:
        return
    ceil_mode = model.cfg.encoder.ceil_mode
    model.encoder = VGGEncoder(layout, model.encoder.depth, ceil_mode)
    if model.loss_net is not None:
        model.loss_net = VGGEncoder(layout, model.loss_net.depth, ceil_mode).requires_grad_(False)


def model_config(saved: DictConfig, source: Path) -> DictConfig:
    """The saved config validated against its architecture's schema, with no weight file read (no download):
    random VGG weights and no released decoder/transform, since the ticket holds them all."""
    name = saved.get("name")
    if name not in MODEL_REGISTRY:
        raise TicketError(f"{source} holds a model named {name!r}: expected one of {sorted(MODEL_REGISTRY)}")
    try:
        schema = MODEL_REGISTRY[name].schema()
        return without_weight_files(OmegaConf.merge(schema, saved))
    except OmegaConfBaseException as error:
        raise TicketError(f"{source}: the saved {name} config does not fit its schema ({error})") from None


def build_model(parts: TicketParts, source: Path) -> StyleTransferModule:
    """The ticket's architecture holding the ticket's weights, in eval mode with gradients off."""
    model = create_model(model_config(parts.model_cfg, source))
    _use_layout(model, _encoder_layout(parts.state))
    if parts.channels is not None:
        try:
            narrow_convs(model, parts.channels)
        except (ValueError, AttributeError) as error:
            raise TicketError(f"{source}: {error}") from None
    own = {k for k in model.state_dict() if k.startswith(PART_PREFIXES)}
    missing, unexpected = sorted(own - set(parts.state)), sorted(set(parts.state) - own)
    if missing or unexpected:
        raise TicketError(
            f"{source}: the weights do not fit model {model.cfg.name}: missing {missing[:3]}, unexpected {unexpected[:3]}"
        )
    try:
        model.load_state_dict(parts.state, strict=False)
    except RuntimeError as error:
        detail = [line.strip() for line in str(error).splitlines() if "size mismatch" in line][:1]
        raise TicketError(f"{source}: the weights do not fit model {model.cfg.name}: {detail or error}") from None
    return model.eval().requires_grad_(False)


def load_ticket(path: str | Path, expected_model: str | None = None) -> tuple[StyleTransferModule, TicketParts]:
    """Build the ticket's model; ``expected_model`` (a user's ``--model``) must name the ticket's architecture."""
    parts = read_ticket(path)
    name = parts.model_cfg.get("name")
    if expected_model is not None and expected_model != name:
        raise TicketError(f"ticket {path} holds a {name!r} model, not {expected_model!r} as --model asks")
    return build_model(parts, Path(path)), parts


# ------------------------------------------------------------------ export
def export_round(folder: str | Path, out: str | Path, *, fp16: bool = False, compress: bool = False) -> ExportStats:
    """A round folder as one compact file that carries its model config (loadable by :func:`load_ticket`)."""
    folder = Path(folder).expanduser()
    if not folder.exists():
        raise TicketError(f"round folder {folder} does not exist: expected a finished round_XX folder of a run")
    if not folder.is_dir():
        raise TicketError(f"{folder} is a file, not a round folder: expected a finished round_XX folder of a run")
    parts = read_round_folder(folder)
    if parts.masks is None:  # an old folder with weights.pt alone
        raise TicketError(f"{folder} has no masks (no {TICKET_FILE}, no {LEGACY_MASKS_FILE}): not a finished round")
    metadata = {
        "model": OmegaConf.to_container(parts.model_cfg, resolve=True, enum_to_str=True),
        "source": str(folder.resolve()),
        **parts.info,
    }
    try:
        return export_ticket(
            parts.state, parts.masks, out, values="fp16" if fp16 else "fp32", compress=compress, metadata=metadata
        )
    except ValueError as error:
        raise TicketError(f"cannot export {folder}: {error}") from None
