"""Training step time: the framework against a plain PyTorch loop, and both against the machine's limit.

Usage: python bench/step_time.py [--shapes 2x128,8x256] [--modes frozen,plus] [--repeats 3] [--steps 3]
           [--threads N] [--variants plain,plain+fast,framework,nchw,compile,...]

* ``plain``: the reference AdaIN training computation written as a bare loop
  (``frozen``: frozen VGG encoder, decoder trained with Adam, loss 1*Lc + 10*Ls,
  per-iteration inverse LR decay; ``plus``: the "+" model, encoder trained too,
  losses from a frozen copy). Default Adam, as the reference script; no
  Lightning, no masks. ``plain+fast``: the same loop with the framework's
  default speed settings (fused Adam, channels-last, freed memory kept in the
  heap), which separates what the settings gain from what the framework costs.
* ``plain+fast/mmap``: ``plain+fast`` with glibc's default malloc, which
  unmaps freed tensors (``training.keep_freed_memory=false``): against
  ``plain+fast`` it shows what keeping freed memory in the heap gains.
* ``framework``: the same model as a LightningModule fitted by the Trainer the
  IMP driver builds (``LotteryRun.build_trainer``: MaskCallback with a 20% IMP mask,
  checkpoint callback, the configured logger and progress bar), with the
  default ``training.*`` speed options.
* ``nchw``, ``compile``, ``nchw+compile``, ``no_progress_bar``: the framework
  with those options changed from the defaults.

Keeping freed memory is process-wide and cannot be undone, so the variants
with glibc's default malloc (``plain``, ``plain+fast/mmap``) run in a child
process that never changes it; the other variants run in this process, with
the framework's setting from the start. The two processes take turns, never
computing at the same time.

Every variant starts from the same weights and sees the same in-memory
batches (data loading is measured by bench/data_rate.py). Variants alternate
inside each repeat, so load from other processes hits them alike, and each
repeat starts with the next variant (whichever runs first after the conv
peak measurement is a few percent slower); each fit times ``--steps`` steps
after one warm-up step, from one batch start to the next (everything the
loop does per step is inside). The limit is the step's
FLOPs (``FlopCounterMode``, forward + backward) divided by the best conv
throughput measured in the same run; ``x limit`` divides the median step by
it, ``(min)`` the fastest step (best case against best case, less sensitive
to other processes). The first loss of every variant is
printed: equal values show that all of them compute the same step.
"""

from __future__ import annotations

import argparse
import copy
import itertools
import logging
import multiprocessing
import os
import statistics
import tempfile
import time
import warnings
from collections.abc import Sequence
from multiprocessing.connection import Connection
from pathlib import Path

import torch
import torch.nn.functional as F
from lightning.pytorch import Callback
from omegaconf import DictConfig
from torch import Tensor, nn
from torch.utils.data import DataLoader
from torch.utils.flop_counter import FlopCounterMode

from lottery_style.core.config import TrainingConfig
from lottery_style.engine.compose import compose
from lottery_style.engine.loggers import build_run_logger
from lottery_style.engine.lottery import LotteryRun
from lottery_style.engine.rewinding import Segment
from lottery_style.engine.speed import keep_freed_memory_in_heap
from lottery_style.models import StyleTransferModule, create_model
from lottery_style.pruning import apply_masks, dense_masks, magnitude_prune
from lottery_style.pruning.callback import MaskCallback

os.environ.setdefault("WANDB_SILENT", "true")  # the default logger is W&B (offline without an API key)
warnings.filterwarnings("ignore", module="lightning")  # per-fit notes (log interval > steps, deprecations)
logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)

SETTINGS = ("channels_last", "compile", "progress_bar", "keep_freed_memory")
FRAMEWORK = {key: getattr(TrainingConfig, key) for key in SETTINGS}  # defaults
OPTIONS = {
    "framework": {},
    "nchw": {"channels_last": False},
    "compile": {"compile": True},
    "nchw+compile": {"channels_last": False, "compile": True},
    "no_progress_bar": {"progress_bar": False},
}
# The reference loop; the same loop with the framework's default speed settings; and with glibc's default malloc.
PLAIN = ("plain", "plain+fast", "plain+fast/mmap")
DEFAULT_MALLOC = ("plain", "plain+fast/mmap")  # run in the child process
PRUNED = 0.2  # the mask of IMP round 1


# ------------------------------------------------------------ plain loop
def _stats(feat: Tensor) -> tuple[Tensor, Tensor]:
    flat = feat.flatten(2)
    return flat.mean(dim=2), (flat.var(dim=2) + 1e-5).sqrt()


def _adain(content: Tensor, style: Tensor) -> Tensor:
    (cm, cs), (sm, ss) = _stats(content), _stats(style)
    return (content - cm[..., None, None]) / cs[..., None, None] * ss[..., None, None] + sm[..., None, None]


class PlainLoop:
    """The reference training step as a bare PyTorch loop over copies of the model's plain nn.Modules."""

    def __init__(self, model: nn.Module, plus: bool, fast: bool = False, lr: float = 1e-4, decay: float = 5e-5):
        layout = torch.channels_last if fast and FRAMEWORK["channels_last"] else torch.contiguous_format
        self.encoder = copy.deepcopy(model.encoder).to(memory_format=layout)
        self.decoder = copy.deepcopy(model.decoder).to(memory_format=layout)
        self.loss_net = copy.deepcopy(model.loss_net).to(memory_format=layout) if plus else self.encoder
        self.plus = plus
        params = [p for p in [*self.encoder.parameters(), *self.decoder.parameters()] if p.requires_grad]
        self.optimizer = torch.optim.Adam(params, lr=lr, fused=fast)
        self.lr, self.decay, self.iteration = lr, decay, 0

    def loss(self, content: Tensor, style: Tensor) -> Tensor:
        style_feats = self.encoder(style)
        t = _adain(self.encoder(content)[-1], style_feats[-1])
        out_feats = self.loss_net(self.decoder(t))
        if self.plus:
            with torch.no_grad():
                style_feats = self.loss_net(style)
                t = _adain(self.loss_net(content)[-1], style_feats[-1])
        content_loss = F.mse_loss(out_feats[-1], t.detach())
        style_loss = 0.0
        for out, target in zip(out_feats, style_feats):
            (om, os_), (tm, ts) = _stats(out), _stats(target.detach())
            style_loss = style_loss + F.mse_loss(om, tm) + F.mse_loss(os_, ts)
        return content_loss + 10.0 * style_loss

    def step(self, batch: dict[str, Tensor]) -> float:
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr / (1.0 + self.decay * self.iteration)
        loss = self.loss(batch["content"], batch["style"])
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        self.iteration += 1
        return loss.item()


def apply_framework_process_settings() -> None:
    """What the framework's first fit does to the whole process (malloc keeps freed memory), done up front."""
    if FRAMEWORK["keep_freed_memory"]:
        keep_freed_memory_in_heap()


def plain_variant_times(
    variant: str, model: nn.Module, plus: bool, batches: list[dict[str, Tensor]]
) -> tuple[list[float], float]:
    """One fit of a plain variant, with a fresh loop and optimizer."""
    return plain_times(PlainLoop(model, plus, fast=variant != "plain"), batches)


def default_malloc_worker(
    conn: Connection, model: nn.Module, plus: bool, batches: list[dict[str, Tensor]], threads: int
) -> None:
    """The child process: runs each variant it is sent until it is sent None; malloc stays as glibc starts it."""
    torch.set_num_threads(threads)
    while (variant := conn.recv()) is not None:
        conn.send(plain_variant_times(variant, model, plus, batches))


def plain_times(loop: PlainLoop, batches: list[dict[str, Tensor]]) -> tuple[list[float], float]:
    starts, first_loss = [], 0.0
    for i, batch in enumerate(batches):
        starts.append(time.perf_counter())
        loss = loop.step(batch)
        first_loss = loss if i == 0 else first_loss
    return [b - a for a, b in itertools.pairwise(starts)], first_loss


# -------------------------------------------------------------- framework
class BatchStarts(Callback):
    def __init__(self) -> None:
        self.starts: list[float] = []
        self.first_loss = 0.0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.starts.append(time.perf_counter())

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if batch_idx == 0:
            self.first_loss = float(outputs["loss"])


def run_config(
    batch: int, size: int, plus: bool, steps: int, options: dict[str, bool], out: Path, extra: Sequence[str] = ()
) -> DictConfig:
    """The bench's run: random weights, ``batch`` crops of ``size`` px, the speed ``options``; ``extra`` overrides
    (model, hardware, logger) go last."""
    overrides = [
        "model.encoder.weights=random", f"model.train_encoder={plus}", f"data.batch_size={batch}",
        f"data.crop_size={size}", f"data.load_size={size}", f"training.steps={steps}",
        "training.checkpoint_every=1000000", "training.log_every=50",
        *(f"training.{key}={value}" for key, value in {**FRAMEWORK, **options}.items()), *extra,
    ]  # fmt: skip
    cfg = compose(overrides)
    cfg.output_dir = str(out)
    return cfg


class Framework:
    """One model object per variant, reset to the start weights before each fit (as IMP rounds reuse it)."""

    def __init__(self, cfg: DictConfig, start: dict[str, Tensor], masks: dict[str, Tensor]):
        self.cfg, self.start, self.masks = cfg, start, masks
        self.model = create_model(cfg.model)
        self.model.load_state_dict(start)

    def fit(self, batches: list[dict[str, Tensor]], *callbacks: Callback) -> None:
        """One fit of IMP round 1 from the start weights, through the Trainer the driver builds, plus ``callbacks``."""
        self.model.load_state_dict(self.start)
        out = Path(self.cfg.output_dir)
        run = LotteryRun(self.cfg, out)
        logger = build_run_logger(self.cfg, out).round_logger(1, {"round": 1, "method": "imp", "sparsity": PRUNED})
        masks = {name: mask.clone() for name, mask in self.masks.items()}
        trainer = run.build_trainer(out / "round_01", MaskCallback(masks), 1, logger, Segment(0, self.cfg.training.steps, 0))
        trainer.callbacks.extend(callbacks)
        trainer.fit(self.model, train_dataloaders=DataLoader(batches, batch_size=None))

    def times(self, batches: list[dict[str, Tensor]]) -> tuple[list[float], float]:
        timer = BatchStarts()
        self.fit(batches, timer)
        return [b - a for a, b in zip(timer.starts, timer.starts[1:])], timer.first_loss


# ------------------------------------------------------------------ limit
def conv_peak_gflops(repeats: int = 3) -> float:
    """Best forward-conv throughput over VGG-like shapes, NCHW and channels-last."""
    best = 0.0
    for batch, channels, side in ((8, 256, 64), (8, 512, 32), (4, 128, 128)):
        conv = nn.Conv2d(channels, channels, 3, padding=1)
        x = torch.randn(batch, channels, side, side)
        flops = 2 * batch * channels * channels * 9 * side * side
        for fmt in (torch.contiguous_format, torch.channels_last):
            conv_f, x_f = conv.to(memory_format=fmt), x.contiguous(memory_format=fmt)
            with torch.no_grad():
                conv_f(x_f)
                for _ in range(repeats):
                    start = time.perf_counter()
                    conv_f(x_f)
                    best = max(best, flops / (time.perf_counter() - start) / 1e9)
    return best


def step_gflop(loop: PlainLoop, batch: dict[str, Tensor]) -> float:
    counter = FlopCounterMode(display=False)
    with counter:
        loop.loss(batch["content"], batch["style"]).backward()
    loop.optimizer.zero_grad()
    return counter.get_total_flops() / 1e9


# ------------------------------------------------------------------- main
def reference_scope(cfg: DictConfig) -> list[str]:
    return [str(getattr(part, "value", part)) for part in cfg.pruning.scope]


def masked_start(cfg: DictConfig) -> tuple[StyleTransferModule, dict[str, Tensor], dict[str, Tensor]]:
    """A seeded model of ``cfg`` pruned to IMP round 1 (``PRUNED`` by magnitude over the scope), its state and
    masks: every variant starts from the same masked weights."""
    torch.manual_seed(0)
    model = create_model(cfg.model)
    groups = model.prunable_weights()
    weights = {n: p.detach() for part in reference_scope(cfg) for n, p in groups[part].items()}
    masks = magnitude_prune(weights, dense_masks(weights), PRUNED, tie_seed=0)
    apply_masks(weights, masks)
    return model, {k: v.clone() for k, v in model.state_dict().items()}, masks


def bench_shape(batch: int, size: int, plus: bool, args: argparse.Namespace, tmp: Path) -> None:
    torch.manual_seed(0)
    batches = [{"content": torch.rand(batch, 3, size, size), "style": torch.rand(batch, 3, size, size)}
               for _ in range(args.steps + 2)]  # fmt: skip
    def config(variant: str) -> DictConfig:
        return run_config(batch, size, plus, args.steps + 2, OPTIONS.get(variant, {}), tmp / f"{batch}x{size}-{plus}-{variant}")

    reference, start, masks = masked_start(config("framework"))  # never trained: every plain loop copies it
    frameworks = {v: Framework(config(v), start, masks) for v in args.variants if v not in PLAIN}
    gflop = step_gflop(PlainLoop(reference, plus), batches[0])
    spawn = multiprocessing.get_context("spawn")
    child_end, conn = spawn.Pipe()
    child = spawn.Process(target=default_malloc_worker, args=(child_end, reference, plus, batches, torch.get_num_threads()))
    child.start()
    times: dict[str, list[float]] = {v: [] for v in args.variants}
    losses: dict[str, float] = {}
    peaks = []
    for repeat in range(args.repeats):
        peaks.append(conv_peak_gflops())
        first = repeat % len(args.variants)  # each repeat starts with the next variant: no one always goes first
        for variant in args.variants[first:] + args.variants[:first]:
            if variant in DEFAULT_MALLOC:
                conn.send(variant)
                measured, loss = conn.recv()
            elif variant in PLAIN:
                measured, loss = plain_variant_times(variant, reference, plus, batches)
            else:
                measured, loss = frameworks[variant].times(batches)
            times[variant] += measured[1:]  # after one warm-up step
            losses[variant] = loss
    conn.send(None)
    child.join()
    peak = max(peaks)
    ideal = gflop / peak
    mode = "plus (encoder trained)" if plus else "frozen encoder (reference)"
    print(f"\n== batch {batch} at {size} px, {mode}: {gflop:.1f} GFLOP/step, best conv {peak:.0f} GFLOP/s, "
          f"limit {ideal:.3f} s/step, load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    bases = {name: statistics.median(times[name]) for name in ("plain", "plain+fast") if name in times}
    header = "".join(f" {'x ' + name:>12}" for name in bases)
    print(f"{'variant':>16} {'median s':>9} {'min s':>8}{header} {'x limit':>8} {'(min)':>6} {'first loss':>12}")
    for variant, values in times.items():
        median, fastest = statistics.median(values), min(values)
        ratios = "".join(f" {median / base:>12.3f}" for base in bases.values())
        print(f"{variant:>16} {median:>9.3f} {fastest:>8.3f}{ratios} {median / ideal:>8.2f} {fastest / ideal:>6.2f} "
              f"{losses[variant]:>12.6g}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", default="2x128,8x256", help="batch x size pairs, comma separated")
    parser.add_argument("--modes", default="frozen,plus")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=3, help="timed steps per fit (after one warm-up step)")
    parser.add_argument("--variants", default="plain,plain+fast,plain+fast/mmap,framework,nchw,compile")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    apply_framework_process_settings()
    args.variants = args.variants.split(",")
    unknown = set(args.variants) - {*PLAIN, *OPTIONS}
    if unknown:
        parser.error(f"unknown variants {sorted(unknown)}: expected some of {[*PLAIN, *OPTIONS]}")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, load average {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as tmp:
        for shape in args.shapes.split(","):
            batch, size = (int(x) for x in shape.split("x"))
            for mode in args.modes.split(","):
                bench_shape(batch, size, mode == "plus", args, Path(tmp))


if __name__ == "__main__":
    main()
