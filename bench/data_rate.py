"""Data loading rate of the training loader against the rate at which training steps consume batches.

Usage: python bench/data_rate.py [--shapes 2x128,8x256] [--workers 0,2] [--batches 8] [--repeats 3] [--threads N]

The loader is ``StylePairDataModule.train_dataloader()`` exactly as a run builds
it (resize to ``2 x crop`` square, random crop, as the references' 512 -> 256).
Two image sets: the bundled sample images (PNG, ~512 px) and JPEG folders at
the sizes of the paper's data (content 640x480 like MS-COCO, style 1600x1200
like a typical WikiArt scan), made from the sample images in a temp folder.
The consumer is the AdaIN training step (frozen encoder, with the framework's
speed settings) on batches already in memory. Loader and step
measurements alternate in each repeat; medians are printed. A ratio
loader/step above 1 means the loader keeps up without workers, and with
``workers > 0`` loading overlaps the step (but shares the same cores).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch
from omegaconf import OmegaConf
from PIL import Image
from step_time import (  # bench/ is on sys.path when run as a script
    PlainLoop,
    apply_framework_process_settings,
    run_config,
)

from lottery_style.config import DataConfig
from lottery_style.data.datamodule import StylePairDataModule
from lottery_style.data.images import list_images
from lottery_style.data.sample import sample_dirs
from lottery_style.models import create_model

PAPER_SIZES = {"content": (640, 480), "style": (1600, 1200)}


def jpeg_folders(root: Path) -> tuple[Path, Path]:
    """The sample images re-saved as JPEG (quality 90) at the paper's data sizes."""
    folders = []
    for role, source in zip(("content", "style"), sample_dirs()):
        folder = root / role
        folder.mkdir(parents=True)
        for path in list_images(source, role):
            with Image.open(path) as image:
                image.convert("RGB").resize(PAPER_SIZES[role], Image.Resampling.BICUBIC).save(
                    folder / f"{path.stem}.jpg", quality=90
                )
        folders.append(folder)
    return folders[0], folders[1]


def loader_seconds_per_batch(dirs: tuple[Path | None, Path | None], batch: int, size: int, workers: int, count: int) -> float:
    cfg = OmegaConf.structured(DataConfig)
    cfg.merge_with({"content_dir": dirs[0] and str(dirs[0]), "style_dir": dirs[1] and str(dirs[1]),
                    "batch_size": batch, "crop_size": size, "load_size": 2 * size, "num_workers": workers,
                    "eval_contents": 1, "eval_styles": 1, "eval_size": 16})  # fmt: skip
    datamodule = StylePairDataModule(cfg, steps_per_epoch=count + 1)
    datamodule.setup("fit")
    iterator = iter(datamodule.train_dataloader())
    next(iterator)  # worker start-up and first file opens are not per-batch costs
    start = time.perf_counter()
    for _ in range(count):
        next(iterator)
    return (time.perf_counter() - start) / count


def step_seconds(loop: PlainLoop, batch: dict[str, torch.Tensor], count: int) -> float:
    loop.step(batch)
    start = time.perf_counter()
    for _ in range(count):
        loop.step(batch)
    return (time.perf_counter() - start) / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", default="2x128,8x256", help="batch x crop size pairs, comma separated")
    parser.add_argument("--workers", default="0,2", help="DataLoader worker counts to measure")
    parser.add_argument("--batches", type=int, default=8, help="batches timed per loader measurement")
    parser.add_argument("--steps", type=int, default=2, help="steps timed per step measurement")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    apply_framework_process_settings()  # as a run's first fit does, for the step and the loader alike
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, load average {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as tmp:
        sets = {"sample PNG": (None, None), "paper-size JPEG": jpeg_folders(Path(tmp) / "jpeg")}
        for shape in args.shapes.split(","):
            batch, size = (int(x) for x in shape.split("x"))
            model = create_model(run_config(batch, size, False, 1, {}, Path(tmp) / "cfg").model)
            loop = PlainLoop(model, plus=False, fast=True)
            data = {"content": torch.rand(batch, 3, size, size), "style": torch.rand(batch, 3, size, size)}
            loads: dict[tuple[str, int], list[float]] = {}
            steps: list[float] = []
            for _ in range(args.repeats):
                steps.append(step_seconds(loop, data, args.steps))
                for name, dirs in sets.items():
                    for workers in (int(w) for w in args.workers.split(",")):
                        loads.setdefault((name, workers), []).append(
                            loader_seconds_per_batch(dirs, batch, size, workers, args.batches)
                        )
            step = statistics.median(steps)
            print(f"\n== batch {batch}, crop {size} from {2 * size} px: step {step:.3f} s ({1 / step:.2f} batches/s consumed)")
            print(f"{'images':>16} {'workers':>7} {'s/batch':>8} {'batches/s':>10} {'loader/step':>12}")
            for (name, workers), values in loads.items():
                median = statistics.median(values)
                print(f"{name:>16} {workers:>7} {median:>8.3f} {1 / median:>10.2f} {step / median:>12.2f}")


if __name__ == "__main__":
    main()
