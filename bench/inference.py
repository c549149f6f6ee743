"""Inference cost of AdaIN tickets: latency, peak memory, FLOPs and parameters, in PyTorch eager and ONNX Runtime.

Usage: python bench/inference.py [--sizes 512,1024] [--repeats 3] [--channel-sparsities 0.25,0.5,0.75]
           [--weight-sparsity 0.8926] [--scope encoder,decoder] [--ticket ROUND ...] [--threads N] [--no-memory]
       python bench/inference.py --quick   (64 px, 1 repeat, no memory children: checks that everything runs)

Variants, each stylizing one content/style pair (square, ``--sizes`` px, alpha 1):

* ``dense``: the AdaIN model (encoder to relu4_1, AdaIN, decoder);
* ``weight X%``: an unstructured ticket (weight granularity, global magnitude, the paper's 89.26% = 1 - 0.8^10 by
  default) run as the project runs it: masked, every dense kernel computing its zeros;
* ``channel X%``: channel tickets (the project's channel pruner: per-channel filter L1 norm, global ranking
  normalised per layer, its default) at each of ``--channel-sparsities`` (of the prunable channels), run as
  their slim models (``export --slim``: each conv narrowed to its kept channels);
* ``ROUND`` (``--ticket``, repeatable): a real channel ticket's slim model, its own weights and channel counts;
* ``reference`` (PyTorch only): the reference AdaIN ``test.py`` forward written as plain torch (the encoder's
  and the decoder's ``nn.Sequential`` bodies, AdaIN by ``torch.var``): the sanity check that the dense variant
  is that forward and costs the same.

Weights are random (seed 0), pruned by the project's own pruners: latency depends on how many channels each
conv keeps, not on which, nor on the weights' values, so a ticket of random weights times like a trained one
with the same per-layer counts (``--ticket`` gives a trained ticket's counts, which differ from layer to layer
where random weights lose about the same fraction everywhere). Every variant is written as a ticket export file
and read back by the project's own code: ``load_ticket`` (dense, weight), ``slim_ticket`` (channel), and
``export_onnx`` (``--slim`` for channel tickets) for the ONNX graph, so the bench times what the tools deploy.

Engines: PyTorch eager (``torch.inference_mode``, model and inputs channels-last, the framework's layout) and
ONNX Runtime (CPU provider, all graph optimisations, its memory arena off: every variant's session stays open
for the interleaving, and an arena keeps each session's peak allocated, which nine sessions at 1024 px would
not fit on a 23 GiB machine). Both use ``--threads`` threads.

Timing: one warm-up stylization per variant, engine and size, then ``--repeats`` rounds in which every
(engine, variant) runs once, round-robin in one process, each round starting one variant later, so that load
from other processes hits all alike; the median is printed, and ``x dense`` is its ratio to the same engine's
dense median at the same size (speed-up = 1 / x dense).

Peak memory: peak RSS (``resource.getrusage``) of a fresh child process per (engine, variant) that loads the
model as above and stylizes once at each size, smallest first, reading the high-water mark after each (memory
grows with the size, so each reading is that size's peak). tracemalloc misses torch's and ONNX Runtime's
native allocations, and a high-water mark cannot be reset for one variant inside a process that ran others;
``+fwd`` is the peak over the child's high-water mark before its first stylization (interpreter, libraries,
model: the stylization's own memory). The ``reference`` row runs the dense model's layers and is not measured.

FLOPs: :func:`~lottery_style.engine.cost.stylization_flops` (``FlopCounterMode``) at 64 px, scaled by the
pixel count: sides are multiples of 8, so every conv's output, and its FLOPs, scale exactly with it. A
masked ticket counts its zeros (the dense kernels compute them); ONNX Runtime runs the same graph.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf
from torch import Tensor

from lottery_style.core.config import PART_PREFIXES
from lottery_style.engine.cost import parameter_counts, stylization_flops
from lottery_style.engine.granularity import channel_layout
from lottery_style.models import MODEL_REGISTRY, create_model
from lottery_style.models.base import StyleTransferModule
from lottery_style.pruning import dense_masks, magnitude_prune
from lottery_style.pruning.channels import ChannelPruner
from lottery_style.tickets.export import export_ticket
from lottery_style.tickets.loading import TicketError, load_ticket
from lottery_style.tools.onnx_export import export_onnx
from lottery_style.tools.slim import slim_ticket

MODEL = "adain"
FLOPS_SIDE = 64  # FLOPs are counted at this side and scaled by the pixel count (module docstring)
ENGINES = ("torch", "onnx")
REFERENCE = "reference"
KIB_PER_MIB = 2**10


@dataclass
class Variant:
    """One ticket to time: its ticket file and whether it runs as its slim model."""

    name: str
    ticket: Path
    slim: bool


# ------------------------------------------------------------------ tickets
def random_model() -> StyleTransferModule:
    torch.manual_seed(0)
    return create_model(OmegaConf.merge(MODEL_REGISTRY[MODEL].schema(), {"encoder": {"weights": "random"}}))


def write_ticket(model: StyleTransferModule, masks: dict[str, Tensor], path: Path) -> Path:
    """``model``'s stylizing parts with ``masks`` as a ticket export file that carries the model config."""
    state = {name: t for name, t in model.state_dict().items() if name.startswith(PART_PREFIXES)}
    state = {name: t.masked_fill(~masks[name], 0.0) if name in masks else t for name, t in state.items()}
    config = OmegaConf.to_container(model.cfg, resolve=True, enum_to_str=True)
    export_ticket(state, masks, path, metadata={"model": config})
    return path


def made_variants(args: argparse.Namespace, folder: Path) -> list[Variant]:
    """Dense, the weight ticket and the channel tickets of one random model, then the ``--ticket`` rounds."""
    model = random_model()
    scope = [name for name, _ in model.named_parameters() if name.startswith(tuple(f"{p}." for p in args.scope))]
    prunable = {n: p.detach() for group in model.prunable_weights().values() for n, p in group.items() if n in scope}
    variants = [Variant("dense", write_ticket(model, {}, folder / "dense.lst"), slim=False)]
    masks = magnitude_prune(prunable, dense_masks(prunable), args.weight_sparsity, tie_seed=0)
    variants.append(
        Variant(f"weight {args.weight_sparsity:.1%}", write_ticket(model, masks, folder / "weight.lst"), False)
    )
    pruner = ChannelPruner(channel_layout(model, prunable))
    for sparsity in args.channel_sparsities:
        masks = pruner.magnitude(prunable, pruner.dense(prunable), sparsity, layerwise=False, tie_seed=0)
        path = write_ticket(model, masks, folder / f"channel_{sparsity}.lst")
        variants.append(Variant(f"channel {pruner.sparsity(masks):.1%}", path, slim=True))
    for ticket in args.ticket:
        name = load_ticket(ticket)[1].model_cfg.get("name")
        if name != MODEL:
            raise SystemExit(f"--ticket {ticket} holds a {name!r} model: expected a channel ticket of {MODEL!r}")
        variants.append(Variant(str(ticket), Path(ticket), slim=True))
    return variants


def torch_model(variant: Variant) -> StyleTransferModule:
    """The variant's model as the tools build it, channels-last."""
    model = slim_ticket(variant.ticket).model if variant.slim else load_ticket(variant.ticket)[0]
    return model.eval().to(memory_format=torch.channels_last)


# ------------------------------------------------------------------ engines
def reference_forward(model: StyleTransferModule) -> Callable[[Tensor, Tensor], Tensor]:
    """The reference AdaIN test.py forward on ``model``'s layers: vgg(content), vgg(style), AdaIN, decoder."""
    vgg, decoder = model.encoder.body, model.decoder.body

    def mean_std(feat: Tensor) -> tuple[Tensor, Tensor]:
        n, c = feat.shape[:2]
        var = feat.reshape(n, c, -1).var(dim=2) + 1e-5
        return feat.reshape(n, c, -1).mean(dim=2).view(n, c, 1, 1), var.sqrt().view(n, c, 1, 1)

    def forward(content: Tensor, style: Tensor) -> Tensor:
        content_feat, style_feat = vgg(content), vgg(style)
        (c_mean, c_std), (s_mean, s_std) = mean_std(content_feat), mean_std(style_feat)
        return decoder((content_feat - c_mean) / c_std * s_std + s_mean)

    return forward


def onnx_runner(path: Path, threads: int) -> Callable[[np.ndarray, np.ndarray], object]:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.enable_cpu_mem_arena = False  # the module docstring says why
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    alpha = np.array(1.0, dtype=np.float32)
    return lambda content, style: session.run(None, {"content": content, "style": style, "alpha": alpha})


def pair(size: int, engine: str) -> tuple[object, object]:
    """The same random content/style pair for every variant: channels-last tensors, or numpy arrays for ONNX."""
    generator = torch.Generator().manual_seed(size)
    content, style = (torch.rand(1, 3, size, size, generator=generator) for _ in range(2))
    if engine == "onnx":
        return content.numpy(), style.numpy()
    return content.to(memory_format=torch.channels_last), style.to(memory_format=torch.channels_last)


def runner(
    engine: str, variant: Variant, model: StyleTransferModule, onnx_file: Path | None, threads: int
) -> Callable[[object, object], object]:
    """One stylization of a pair by ``variant`` (``model``: its torch model) on ``engine`` (``reference``: the
    plain forward of the dense model)."""
    if engine == "onnx":
        assert onnx_file is not None
        return onnx_runner(onnx_file, threads)
    forward = reference_forward(model) if variant.name == REFERENCE else model.stylize

    def run(content: object, style: object) -> object:
        with torch.inference_mode():
            return forward(content, style)  # type: ignore[arg-type]

    return run


# ------------------------------------------------------------------ memory
def high_water_kib() -> int:
    """This process's peak RSS in KiB: ``VmHWM`` of its own address space where Linux reports it.

    ``ru_maxrss`` is kept across ``exec``, so a child started from a large parent would report the parent's peak.
    """
    status = Path("/proc/self/status")
    if status.is_file():
        return int(next(line for line in status.read_text().splitlines() if line.startswith("VmHWM:")).split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def child(spec: dict[str, object]) -> None:
    """Peak RSS of one (engine, variant) at each size, smallest first, as a JSON line."""
    torch.set_num_threads(int(spec["threads"]))  # type: ignore[arg-type]
    variant = Variant(str(spec["name"]), Path(str(spec["ticket"])), bool(spec["slim"]))
    onnx_file = Path(str(spec["onnx"])) if spec["onnx"] else None
    model = torch_model(variant) if spec["engine"] == "torch" else None
    run = runner(str(spec["engine"]), variant, model, onnx_file, int(spec["threads"]))  # type: ignore[arg-type]
    inputs = {size: pair(size, str(spec["engine"])) for size in spec["sizes"]}  # type: ignore[attr-defined]
    loaded = high_water_kib()
    peaks = {}
    for size in sorted(inputs):
        run(*inputs[size])
        peaks[size] = high_water_kib()
    print(json.dumps({"loaded_kib": loaded, "peak_kib": peaks}))


def peak_memory(spec: dict[str, object]) -> dict[str, object]:
    command = [sys.executable, __file__, "--child", json.dumps(spec)]
    result = subprocess.run(command, check=False, capture_output=True, text=True)
    if result.returncode:
        raise SystemExit(f"memory child for {spec['engine']} {spec['name']} failed: {result.stderr.strip()[-500:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------ timing
def timed(run: Callable[[object, object], object], inputs: tuple[object, object]) -> float:
    start = time.perf_counter()
    run(*inputs)
    return time.perf_counter() - start


def interleaved(runners: dict[tuple[str, str], Callable], size: int, repeats: int) -> dict[tuple[str, str], float]:
    """Median seconds of each runner at ``size``: a warm-up each, then ``repeats`` round-robin rounds."""
    inputs = {engine: pair(size, engine) for engine in ENGINES}
    keys = list(runners)
    for key in keys:
        runners[key](*inputs[key[0]])
    times: dict[tuple[str, str], list[float]] = {key: [] for key in keys}
    for repeat in range(repeats):
        shift = repeat % len(keys)
        for key in keys[shift:] + keys[:shift]:
            times[key].append(timed(runners[key], inputs[key[0]]))
    return {key: statistics.median(values) for key, values in times.items()}


# ------------------------------------------------------------------ main
def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="512,1024", help="image sides in px, comma separated (multiples of 8)")
    parser.add_argument("--repeats", type=int, default=3, help="timed round-robin rounds after the warm-up")
    parser.add_argument("--channel-sparsities", default="0.25,0.5,0.75", help="channel tickets' channel sparsities")
    parser.add_argument("--weight-sparsity", type=float, default=1 - 0.8**10, help="the unstructured ticket's")
    parser.add_argument("--scope", default="encoder,decoder", help="parts pruned (the default run's scope for AdaIN)")
    parser.add_argument("--ticket", action="append", default=[], help="a real AdaIN channel ticket (round folder)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch and ONNX Runtime threads")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory child processes")
    parser.add_argument("--quick", action="store_true", help="64 px, 1 repeat: a check that everything runs")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return args
    if args.quick:
        args.sizes, args.repeats, args.no_memory = "64", 1, True
    try:
        args.sizes = sorted(int(s) for s in args.sizes.split(","))
        args.channel_sparsities = [float(s) for s in args.channel_sparsities.split(",") if s]
    except ValueError as error:
        parser.error(f"--sizes and --channel-sparsities take comma-separated numbers: {error}")
    if any(size <= 0 or size % 8 for size in args.sizes):
        parser.error(f"--sizes {args.sizes}: expected positive multiples of 8 (AdaIN pools three times)")
    if not all(0 < s < 1 for s in [*args.channel_sparsities, args.weight_sparsity]):
        parser.error("--channel-sparsities and --weight-sparsity: expected fractions in (0, 1)")
    args.scope = args.scope.split(",")
    if not set(args.scope) <= {"encoder", "decoder"} or not args.scope:
        parser.error(f"--scope {args.scope}: expected encoder and/or decoder (AdaIN's transform has no weights)")
    if args.repeats < 1 or args.threads < 1:
        parser.error("--repeats and --threads: expected at least 1")
    return args


def main() -> None:
    args = parse_args()
    if args.child:
        child(json.loads(args.child))
        return
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        try:
            variants = made_variants(args, folder)
            onnx_files = {
                v.name: export_onnx(v.ticket, folder / f"{i}.onnx", slim=v.slim).path for i, v in enumerate(variants)
            }
        except TicketError as error:
            raise SystemExit(str(error)) from None
        reference = Variant(REFERENCE, variants[0].ticket, slim=False)
        keys = [(engine, v) for engine in ENGINES for v in ([*variants, reference] if engine == "torch" else variants)]
        models = {v.name: torch_model(v) for v in variants}
        runners = {
            (e, v.name): runner(e, v, models.get(v.name, models["dense"]), onnx_files.get(v.name), args.threads)
            for e, v in keys
        }
        flops = {name: stylization_flops(model, FLOPS_SIDE, torch.device("cpu")) for name, model in models.items()}
        params = {name: parameter_counts(model) for name, model in models.items()}
        medians = {size: interleaved(runners, size, args.repeats) for size in args.sizes}
        memory = {} if args.no_memory else {
            (e, v.name): peak_memory({
                "engine": e, "name": v.name, "ticket": str(v.ticket), "slim": v.slim, "sizes": args.sizes,
                "onnx": str(onnx_files.get(v.name, "")), "threads": args.threads,
            })
            for e, v in keys
            if v.name != REFERENCE
        }  # fmt: skip
    print(f"AdaIN stylization of one {'/'.join(map(str, args.sizes))} px pair, {args.threads} thread(s), "
          f"median of {args.repeats} interleaved repeat(s); torch {torch.__version__}")  # fmt: skip
    print(f"{'size':>5} {'engine':>6} {'variant':>16} {'median ms':>10} {'x dense':>8} {'speed-up':>8} "
          f"{'GFLOP':>8} {'params M (nonzero)':>19} {'peak RSS MiB':>12} {'+fwd MiB':>9}")  # fmt: skip
    for size in args.sizes:
        for engine, variant in keys:
            seconds = medians[size][(engine, variant.name)]
            ratio = seconds / medians[size][(engine, "dense")]
            counted = variants[0].name if variant.name == REFERENCE else variant.name  # the dense model's layers
            gflop = flops[counted] * (size / FLOPS_SIDE) ** 2 / 1e9
            count = params[counted]
            nonzero = f"({count['params_nonzero'] / 1e6:.2f})"
            held = memory.get((engine, variant.name))
            rss = f"{'-':>12} {'-':>9}"
            if held:
                peak = held["peak_kib"][str(size)]
                rss = f"{peak / KIB_PER_MIB:>12.0f} {(peak - held['loaded_kib']) / KIB_PER_MIB:>9.0f}"
            print(f"{size:>5} {engine:>6} {variant.name[-16:]:>16} {seconds * 1e3:>10.1f} {ratio:>8.2f} {1 / ratio:>8.2f} "
                  f"{gflop:>8.1f} {count['params_total'] / 1e6:>10.2f} {nonzero:>8} {rss}")  # fmt: skip


if __name__ == "__main__":
    main()
