"""The GPU numbers: the training step against the practical limit, stylization latency, and the data pipeline
against the step's demand.

Usage: python bench/gpu.py [--cpu] [--tiny] [--steps 20] [--warmup 3] [--json PATH]

* ``practical limit``: a square bf16 matrix product (8192, fp32 on the CPU) timed in this process: what the
  device's matrix units give in practice, the yardstick for the step's achieved FLOP/s.
* ``train``: the AdaIN+ and SANet+ training step (encoder trained, 20% IMP mask, fused Adam) at the paper's
  batch and crop (batch 8 and 5 at 256 px) through the Trainer the IMP driver builds, with ``hardware=gpu``
  (bf16-mixed) and the default speed settings; batches already on the device (loading is the data section's).
  Step time is the wall time of ``--steps`` steps after ``--warmup``, the device synchronised at both ends;
  pairs/s = batch / step time; peak = the most GPU memory allocated during the fit; FLOPs per step are counted
  once (``FlopCounterMode``: convolutions and matrix products of forward and backward, nothing else), so
  achieved FLOP/s = FLOPs per step / step time.
* ``stylize``: latency of one dense model's ``stylize`` (random weights, fp32 as ``lottery-style stylize``
  runs it) at 512 and 1024 px, content and style of that size: median of 5 after 2 warm-ups.
* ``data``: images per second per CPU core (one thread) of the loader paths on JPEGs at COCO's 640x480 and
  WikiArt's 1600x1200 (bench/data_rate.py's folders and paths; load 512, crop 256), the GPU's own rate for
  ``data.decode=device``'s batched decode, and the cores each path needs to feed each model's measured step
  (pairs/s x 2 images).

``--cpu`` runs everything on the CPU in fp32 (``hardware=cpu``); ``--tiny`` shrinks every size (batch 2 at 32
px, stylize at 32 and 64 px, 160x120 JPEGs to 48/32 px) so that ``--cpu --tiny`` finishes in seconds: the CI
run of bench/gpu_check.sh --cpu that keeps this script from rotting. Numbers go to stdout, and with ``--json``
to a file as well.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from data_rate import DeviceDecodeDataset, images_per_second, jpeg_folder, paths  # bench/ is on sys.path
from lightning.pytorch import Callback, LightningModule, Trainer
from step_time import Framework, masked_start, run_config
from torch.utils.flop_counter import FlopCounterMode

from lottery_style.core.atomic import atomic_write
from lottery_style.models import StyleTransferModule, create_model

CPU_PATHS = ("pil", "draft", "prepared", "device-worker")  # bench/data_rate.py's names: per core, one thread


@dataclass(frozen=True)
class Sizes:
    """Every size the bench uses: the paper's on a GPU, a few seconds' worth with --tiny."""

    train: tuple[tuple[str, int, int], ...]  # (model, batch, crop)
    matmul: int
    stylize: tuple[int, ...]
    jpegs: tuple[tuple[int, int], ...]
    load: int
    crop: int
    draws: int


PAPER = Sizes((("adain", 8, 256), ("sanet", 5, 256)), 8192, (512, 1024), ((640, 480), (1600, 1200)), 512, 256, 16)
TINY = Sizes((("adain", 2, 32), ("sanet", 2, 32)), 128, (32, 64), ((160, 120),), 48, 32, 4)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(device: torch.device, run: Any) -> float:
    """Seconds ``run()`` takes, the device synchronised before and after (CUDA kernels run asynchronously)."""
    synchronize(device)
    start = time.perf_counter()
    run()
    synchronize(device)
    return time.perf_counter() - start


# ---------------------------------------------------------------- practical limit
def matmul_tflops(device: torch.device, n: int, repeats: int = 10) -> float:
    """Best of three timings of ``repeats`` n x n x n products (bf16 on CUDA, fp32 on the CPU), in TFLOP/s."""
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))
    for _ in range(3):
        a @ b  # warm-up: kernel choice, clocks

    def products() -> None:
        for _ in range(repeats):
            a @ b

    return 2 * n**3 * repeats / min(timed(device, products) for _ in range(3)) / 1e12


# ----------------------------------------------------------------------- train
class SyncedSteps(Callback):
    """Wall time of the steps after the first ``warmup``, the device synchronised at both ends."""

    def __init__(self, warmup: int, device: torch.device) -> None:
        self.warmup, self.device = warmup, device
        self.start = self.seconds = 0.0

    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int) -> None:
        if batch_idx == self.warmup:
            synchronize(self.device)
            self.start = time.perf_counter()

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        synchronize(self.device)
        self.seconds = time.perf_counter() - self.start


def step_flops(model: StyleTransferModule, batch: dict[str, torch.Tensor], bf16: bool) -> int:
    """FLOPs of one forward and backward of the training loss (convolutions and matrix products)."""
    counter = FlopCounterMode(display=False)
    with counter, torch.autocast(batch["content"].device.type, dtype=torch.bfloat16, enabled=bf16):
        model.weighted_loss(model.losses(batch["content"], batch["style"]).terms).backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops()


def train_step(
    name: str, batch: int, size: int, device: torch.device, args: argparse.Namespace, out: Path
) -> dict[str, Any]:
    steps = args.warmup + args.steps
    hardware = "gpu" if device.type == "cuda" else "cpu"
    extra = [f"model={name}", f"hardware={hardware}", "logger=csv"]
    cfg = run_config(batch, size, True, steps, {"progress_bar": False}, out / f"{name}-{batch}x{size}", extra)
    bf16 = cfg.hardware.precision == "bf16-mixed"
    torch.manual_seed(0)
    data = {role: torch.rand(batch, 3, size, size, device=device) for role in ("content", "style")}
    reference, start, masks = masked_start(cfg)
    flops = step_flops(reference.to(device), data, bf16)
    del reference
    framework = Framework(cfg, start, masks)
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    timer = SyncedSteps(args.warmup, device)
    default_precision = torch.get_float32_matmul_precision()
    try:  # as the app sets it for a run (lottery_style/train.py); stylize leaves it at the default
        torch.set_float32_matmul_precision(cfg.hardware.matmul_precision or default_precision)
        framework.fit([data] * steps, timer)
    finally:
        torch.set_float32_matmul_precision(default_precision)
    seconds = timer.seconds / args.steps
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
    return {
        "model": f"{name}+", "batch": batch, "crop": size, "precision": cfg.hardware.precision,
        "step_ms": 1e3 * seconds, "pairs_per_s": batch / seconds, "peak_gpu_mib": None if peak is None else peak / 2**20,
        "gflop_per_step": flops / 1e9, "achieved_tflops": flops / seconds / 1e12,
    }  # fmt: skip


# --------------------------------------------------------------------- stylize
@torch.inference_mode()
def stylize_latency(name: str, sizes: tuple[int, ...], device: torch.device, out: Path) -> list[dict[str, Any]]:
    cfg = run_config(1, sizes[0], False, 1, {}, out / f"stylize-{name}", [f"model={name}"])
    torch.manual_seed(0)
    model = create_model(cfg.model).eval().to(device)
    rows = []
    for size in sizes:
        content, style = (torch.rand(1, 3, size, size, device=device) for _ in range(2))
        times = [timed(device, lambda c=content, s=style: model.stylize(c, s)) for _ in range(7)][2:]
        rows.append({"model": name, "size": size, "ms": 1e3 * statistics.median(times)})
    return rows


# ------------------------------------------------------------------------ data
def data_rates(sizes: Sizes, device: torch.device, demand: dict[str, float], tmp: Path) -> list[dict[str, Any]]:
    """Images/s of each path, per core for the CPU paths (one thread) and per GPU for ``device-gpu``, and how many
    cores (or what share of the GPU) each model's step needs of it."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    rows = []
    try:
        for width, height in sizes.jpegs:
            root = tmp / f"jpeg-{width}x{height}"
            files = jpeg_folder(root / "jpeg", (width, height))
            datasets, _ = paths(files, root, sizes.load, sizes.crop, batch=8)
            chosen = {name: datasets[name] for name in CPU_PATHS}
            if device.type == "cuda":
                chosen["device-gpu"] = DeviceDecodeDataset(files, sizes.load, sizes.crop, 8, device)
                images_per_second(chosen["device-gpu"], 0, 8)  # warm-up: nvjpeg's handles, the resize kernels
            for name, dataset in chosen.items():
                rate = statistics.median(images_per_second(dataset, r * sizes.draws, sizes.draws) for r in range(3))
                needed = {model: need / rate for model, need in demand.items()}
                per = "GPU" if name == "device-gpu" else "core"
                rows.append({"jpeg": f"{width}x{height}", "path": name, "per": per, "images_per_s": rate, "needed": needed})
    finally:
        torch.set_num_threads(threads)
    return rows


# ------------------------------------------------------------------------ main
def describe(device: torch.device) -> str:
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        return f"{props.name}, {props.total_memory / 2**30:.0f} GiB, CUDA {torch.version.cuda}"
    return f"CPU, torch threads: {torch.get_num_threads()}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu", action="store_true", help="run on the CPU in fp32, even where CUDA is available")
    parser.add_argument("--tiny", action="store_true", help="small sizes: a quick run that checks the script")
    parser.add_argument("--steps", type=int, default=None, help="timed training steps (default 20; 2 with --tiny)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed first steps (default 3; 1 with --tiny)")
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers to this file")
    args = parser.parse_args()
    if not args.cpu and not torch.cuda.is_available():
        parser.error("no CUDA device (torch.cuda.is_available() is False): expected --cpu, e.g. --cpu --tiny")
    if args.steps is None:
        args.steps = 2 if args.tiny else 20
    if args.warmup is None:
        args.warmup = 1 if args.tiny else 3
    if args.steps < 1 or args.warmup < 1:
        parser.error(f"--steps {args.steps} and --warmup {args.warmup}: expected at least 1 each")
    device = torch.device("cpu" if args.cpu else "cuda")
    sizes = TINY if args.tiny else PAPER
    if args.tiny:
        torch.set_num_threads(1)  # tiny tensors gain nothing from more, and lose much on a shared CPU (as the tests)
    results: dict[str, Any] = {"device": describe(device), "torch": torch.__version__, "cpu_cores": os.cpu_count()}
    print(f"{results['device']}; torch {torch.__version__}; {os.cpu_count()} CPU cores")

    results["matmul_tflops"] = matmul_tflops(device, sizes.matmul)
    kind = "bf16" if device.type == "cuda" else "fp32"
    print(f"\npractical limit: {sizes.matmul}^3 {kind} matrix product, {results['matmul_tflops']:.3g} TFLOP/s")

    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        results["train"] = [train_step(name, batch, size, device, args, tmp) for name, batch, size in sizes.train]
        print(f"\ntrain: {args.steps} steps after {args.warmup}, 20% IMP mask, fused Adam, default speed settings")
        print(f"{'model':>8} {'batch@crop':>11} {'precision':>10} {'step ms':>8} {'pairs/s':>8} {'peak GPU MiB':>13} "
              f"{'GFLOP/step':>11} {'TFLOP/s':>8} {'x limit':>8}")  # fmt: skip
        for row in results["train"]:
            peak = "-" if row["peak_gpu_mib"] is None else f"{row['peak_gpu_mib']:.0f}"
            print(f"{row['model']:>8} {row['batch']:>5}@{row['crop']:<5} {row['precision']:>10} {row['step_ms']:>8.1f} "
                  f"{row['pairs_per_s']:>8.1f} {peak:>13} {row['gflop_per_step']:>11.1f} "
                  f"{row['achieved_tflops']:>8.3g} {row['achieved_tflops'] / results['matmul_tflops']:>8.3f}"
                  )  # fmt: skip

        names = [name for name, *_ in sizes.train]
        results["stylize"] = [row for name in names for row in stylize_latency(name, sizes.stylize, device, tmp)]
        print("\nstylize (dense, fp32, content and style of the size, median of 5):")
        for row in results["stylize"]:
            print(f"{row['model']:>8} {row['size']:>5} px {row['ms']:>9.1f} ms")

        demand = {row["model"]: 2 * row["pairs_per_s"] for row in results["train"]}
        results["data"] = data_rates(sizes, device, demand, tmp)
    needs = ", ".join(f"{m} {d:.0f} images/s" for m, d in demand.items())
    print(f"\ndata: load {sizes.load}, crop {sizes.crop}; images/s per core (device-gpu: of the GPU) and the cores "
          f"(the GPU's share) each step needs: {needs}")  # fmt: skip
    print(f"{'JPEG':>10} {'path':>14} {'images/s':>9} {'per':>5} " + " ".join(f"{'need ' + m:>12}" for m in demand))
    for row in results["data"]:
        needed = " ".join(f"{row['needed'][m]:>12.2f}" for m in demand)
        print(f"{row['jpeg']:>10} {row['path']:>14} {row['images_per_s']:>9.1f} {row['per']:>5} {needed}")
    results["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\npeak RSS of this process {results['peak_rss_mib']:.0f} MiB")
    if args.json:
        atomic_write(args.json, lambda handle: handle.write(json.dumps(results, indent=1).encode()))


if __name__ == "__main__":
    main()
