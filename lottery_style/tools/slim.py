"""A physically slim model from a channel ticket (``lottery-style export ROUND --slim``).

A channel ticket is a masked dense network whose pruned channels output exact
zeros. Its slim model is the same architecture with every prunable conv
holding only its kept output channels (filter and bias), and every conv that
reads a pruned channel holding only the input slices that read kept ones. The
modules in between (ReLU, reflection padding, nearest upsampling, pooling,
AdaIN's per-channel statistics, attention's weighted sum over positions) act
on each channel alone and keep a zero channel zero, so they follow the
narrower tensors unchanged, and the slim model computes what the ticket
computes, up to the order of float sums.

Who reads whom comes from the model's own ``channel_links()`` through
:class:`~lottery_style.pruning.channels.ChannelLayout`, the same layout that
ranks the channels, counts the dead input slices in ``weight_sparsity`` and
predicts ``flops_kept``: one definition of which slices a pruned channel
frees. Torch-Pruning's ``DependencyGraph`` (v1.6), the field's tool for this
surgery, was tried on every architecture's stylize forward and is not used:

- AdaIN: it traces exactly what ``channel_links`` says (each decoder conv's
  output channels with the next conv's input channels, the encoder's relu4_1
  conv through AdaIN's statistics, taken as element-wise, to the decoder's
  first conv), and its pruning of those groups matches the masked model;
- SANet: it takes the attention's matrix products for element-wise ops, so it
  groups the value conv's output channels with the query's and the key's
  output channels and the output conv's input channels, index by index. In
  ``softmax(QᵀK)V`` query and key channels are summed over in QᵀK and value
  channels are independent of both; its group for a value channel would cut
  the query and key channels the ticket keeps, and change the output;
- LST, MANet, MCCNet and AdaAttN refuse channel tickets (each model's
  ``channel_refusal``), so there is nothing to slim.

Where it is right it adds nothing over the links the pruning already relies
on, and where it is not it is silently wrong; so the surgery here is a slice
of each conv by the layout's kept channels, with no extra dependency. As a
guard, the slim model is run on a random probe pair beside the masked ticket
and refused when the two differ: a model whose links miss a reader is refused
in one line, never written.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import OmegaConf

from lottery_style.core.config import PART_PREFIXES
from lottery_style.engine.granularity import channel_layout
from lottery_style.models.base import StyleTransferModule
from lottery_style.pruning.channels import ChannelLayout, ChannelPruner
from lottery_style.pruning.slimming import narrow_convs, slim_state
from lottery_style.tickets.loading import TicketError, TicketParts, load_ticket
from lottery_style.tickets.slim_file import Channels, write_slim_file

PROBE_SIDE = 4  # the probe pair's side in size multiples: SANet's relu5_1 is then 4x4, enough for its statistics
PROBE_TOLERANCE = 1e-4  # max abs diff between slim and masked outputs on the probe, relative to the output's scale


@dataclass
class Slimmed:
    """A slim model, the parts of the ticket it came from and its slim config."""

    model: StyleTransferModule
    parts: TicketParts
    channels: Channels


@dataclass(frozen=True)
class SlimExport:
    """What ``export --slim`` wrote, for the tool's one line."""

    path: Path
    model: str
    params: int
    dense_params: int
    file_bytes: int


def checked_layout(model: StyleTransferModule, parts: TicketParts, ticket: str | Path) -> ChannelLayout:
    """The ticket's channel layout, or a one-line refusal naming what keeps it from being slimmed."""
    blocked = f"cannot slim {ticket} ({model.cfg.name})"
    if model.channel_refusal is not None:
        raise TicketError(f"{blocked}: {model.channel_refusal}")
    if parts.masks is None:
        raise TicketError(f"{blocked}: it holds no masks: expected a round folder or a ticket export file")
    layout = channel_layout(model, parts.masks)
    if any(layout.biases.get(name, name) not in parts.masks for name in layout.scope):
        raise TicketError(
            f"{blocked}: it is a weight-granularity ticket, whose pruned single weights remove no channel: slim a "
            "ticket of a pruning.granularity=channel run"
        )
    try:
        ChannelPruner(layout).counts(parts.masks)
    except ValueError as error:
        raise TicketError(f"{blocked}: {error}") from None
    return layout


@torch.no_grad()
def probe_difference(masked: StyleTransferModule, slim: StyleTransferModule) -> float:
    """Max abs diff of the two models' outputs on a random pair, over the masked output's scale (at least 1)."""
    side = PROBE_SIDE * masked.size_multiple
    generator = torch.Generator().manual_seed(0)
    content, style = (torch.rand(1, 3, side, side, generator=generator) for _ in range(2))
    expected = masked.stylize(content, style)
    return float((slim.stylize(content, style) - expected).abs().max() / expected.abs().max().clamp(min=1.0))


def slim_ticket(ticket: str | Path) -> Slimmed:
    """The slim model of a channel ticket (a round folder or a ticket export file), checked against the ticket."""
    model, parts = load_ticket(ticket)
    layout = checked_layout(model, parts, ticket)
    assert parts.masks is not None  # checked_layout refused a ticket without masks
    channels = layout.kept_channels(parts.masks)
    masked = copy.deepcopy(model)
    state = slim_state(model.state_dict(), layout, parts.masks)
    try:
        narrow_convs(model, channels)
    except ValueError as error:
        raise TicketError(f"cannot slim {ticket} ({model.cfg.name}): {error}") from None
    model.load_state_dict(state)
    try:
        difference = probe_difference(masked, model)
    except RuntimeError as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise TicketError(f"cannot slim {ticket} ({model.cfg.name}): the narrowed model does not run ({first})") from None
    if not difference <= PROBE_TOLERANCE:
        raise TicketError(
            f"cannot slim {ticket} ({model.cfg.name}): the slim model's output differs from the ticket's by "
            f"{difference:.1e} on a probe pair: a channel it drops is read by an operation that its channel_links "
            "do not name"
        )
    return Slimmed(model, parts, channels)


def export_slim(ticket: str | Path, out: str | Path) -> SlimExport:
    """Write the slim model of a channel ticket as a slim model file (:mod:`lottery_style.tickets.slim_file`)."""
    slimmed = slim_ticket(ticket)
    model = slimmed.model
    state = {name: t for name, t in model.state_dict().items() if name.startswith(PART_PREFIXES)}
    config = OmegaConf.to_container(slimmed.parts.model_cfg, resolve=True, enum_to_str=True)
    path = write_slim_file(out, config, slimmed.channels, state, slimmed.parts.info)  # type: ignore[arg-type]
    count, dense_count = (sum(t.numel() for t in weights.values()) for weights in (state, slimmed.parts.state))
    return SlimExport(path, str(model.cfg.name), count, dense_count, path.stat().st_size)
