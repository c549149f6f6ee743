"""A ticket as one ONNX graph for deployment runtimes (``lottery-style export TICKET --format onnx``).

The graph computes what ``stylize`` computes for a pair, with the ticket's
weights as :func:`~lottery_style.tickets.loading.load_ticket` loads them (a
masked ticket's pruned entries are zeros in the graph's weights):

- inputs ``content`` and ``style``: float32 ``[N, 3, H, W]`` in [0, 1], N shared
  by both, each image's H and W any multiple of the model's ``size_multiple``;
- input ``alpha``: a float32 scalar, the style strength in [0, 1];
- output ``stylized``: float32 ``[N, 3, H, W]`` at the content's size, unclamped.

The exporter is torch's default, ``torch.onnx.export(dynamo=True)``, which
traces with ``torch.export`` (and needs ``onnx`` and ``onnxscript``). Its
dynamic shapes can say "H is 16 times a free integer", so a model's
divisibility checks hold for every size the graph accepts, and a Python branch
on an input's value fails the export instead of being frozen: SANet's
``alpha == 1`` shortcut did, and now steps aside for a tensor alpha
(:func:`~lottery_style.models.base.is_full_style`). The TorchScript tracer
(``dynamo=False``) freezes such a branch silently. Shape comparisons are still
decided on the example inputs, so content and style differ in size there:
``batched_call`` then traces its separate-calls path, right for every pair of
sizes, not the batched one that holds only when both sizes agree.
"""

from __future__ import annotations

import io
import logging
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stderr
from dataclasses import dataclass
from pathlib import Path

import torch

from lottery_style.core.atomic import atomic_write_bytes
from lottery_style.core.extras import installed, not_installed
from lottery_style.models.base import Stylizer
from lottery_style.tickets.loading import TicketError, load_ticket
from lottery_style.tools.slim import slim_ticket

INPUTS = ("content", "style", "alpha")
OUTPUT = "stylized"
DEPLOY_MODULES = ("onnx", "onnxscript")  # what torch.onnx.export(dynamo=True) imports; the deploy extra has them
EXAMPLE_SIDES = ((5, 6), (4, 7))  # content's and style's (H, W) in size multiples: unequal, see the module doc


@dataclass(frozen=True)
class OnnxExport:
    """What was written, for the tool's one line."""

    path: Path
    model: str
    size_multiple: int
    opset: int
    file_bytes: int
    seconds: float


def require_deploy_extra() -> None:
    """Fail in one line, before any ticket is read, when the exporter's packages are missing."""
    for module in DEPLOY_MODULES:
        if not installed(module):
            raise ValueError(not_installed("--format onnx", module, "deploy"))


def dynamic_shapes(multiple: int) -> dict[str, dict[int, object] | None]:
    """N shared by content and style; each image's H and W free multiples of ``multiple``; alpha a scalar."""
    from torch.export import Dim

    batch = Dim("batch", min=1)
    sides = {name: [multiple * Dim(f"{name}_{side}", min=1) for side in ("h", "w")] for name in INPUTS[:2]}
    return {name: {0: batch, 2: h, 3: w} for name, (h, w) in sides.items()} | {"alpha": None}


@contextmanager
def quiet_exporter() -> Iterator[None]:
    """Nothing from the exporter on stderr, where a failed trace prints and logs its whole graph, nor the warning
    it always gives (the shared batch axis is named once, as it should be): the tool's one line says what failed."""
    loggers = [logging.getLogger(name) for name in list(logging.root.manager.loggerDict) if name.startswith("torch")]
    levels = [logger.level for logger in loggers]
    try:
        for logger in loggers:
            logger.setLevel(logging.CRITICAL)
        with warnings.catch_warnings(), redirect_stderr(io.StringIO()):
            warnings.filterwarnings("ignore", message=".*will not be used, since it shares the same shape constraints")
            yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def exporter_error(error: BaseException) -> str:
    """The first line of what the exporter's error wraps: the untraceable op or model line, not its advice."""
    cause = error.__cause__ or error
    first = next((line.strip() for line in str(cause).splitlines() if line.strip()), "")
    return f"{type(cause).__name__}: {first}" if first else type(cause).__name__


def export_onnx(ticket: str | Path, out: str | Path, *, slim: bool = False) -> OnnxExport:
    """Write the ticket's stylize forward as an ONNX file at ``out`` (one file, the weights inside); with ``slim``
    the forward of the channel ticket's slim model (:func:`~lottery_style.tools.slim.slim_ticket`)."""
    require_deploy_extra()
    if slim:
        slimmed = slim_ticket(ticket)
        model, parts = slimmed.model, slimmed.parts
    else:
        model, parts = load_ticket(ticket)
    name = str(model.cfg.name)
    if model.export_blocker is not None:
        raise TicketError(f"cannot export {ticket} ({name}) to ONNX: {model.export_blocker}")
    multiple = model.size_multiple
    generator = torch.Generator().manual_seed(0)
    content, style = (torch.rand(2, 3, h * multiple, w * multiple, generator=generator) for h, w in EXAMPLE_SIDES)
    start = time.perf_counter()
    with quiet_exporter():
        try:
            program = torch.onnx.export(
                Stylizer(model).eval(),
                (content, style, torch.tensor(0.5)),
                dynamo=True,
                dynamic_shapes=dynamic_shapes(multiple),
                input_names=list(INPUTS),
                output_names=[OUTPUT],
                external_data=False,
                verbose=False,
            )
        except Exception as error:  # noqa: BLE001  # the exporter's own errors name what blocks it
            raise TicketError(f"cannot export {ticket} ({name}) to ONNX: {exporter_error(error)}") from None
    proto = program.model_proto
    import onnx

    info = {"model": name, "size_multiple": multiple, "slim": slim or parts.channels is not None, **parts.info}
    onnx.helper.set_model_props(proto, {f"lottery_style.{key}": str(value) for key, value in info.items()})
    path = atomic_write_bytes(out, proto.SerializeToString())
    opset = next(entry.version for entry in proto.opset_import if entry.domain in ("", "ai.onnx"))
    return OnnxExport(path, name, multiple, opset, path.stat().st_size, time.perf_counter() - start)
