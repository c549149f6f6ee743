"""Are ``data.decode=draft`` (or ``device``) crops statistically today's crops? Per-channel statistics and
per-pixel differences.

Usage: python bench/draft_pixels.py [--sizes 640x480,1600x1200,3000x2000] [--draws 150] [--load 512] [--crop 256]
                                    [--decode draft|device]

For each size, the 16 bundled sample images (8 photos, 8 textures, from which
the fine detail of the textures matters most) are saved as JPEGs (quality 90)
at that size and both paths draw the same items from the same seed: the same
files and crop positions, so the crops can be compared pixel by pixel. Printed
in 0-255 levels: per channel the mean and standard deviation of all crop pixels
under each path, the mean per-crop standard deviation (a blur would lower it),
and over all pixels the mean, 99th percentile and maximum of |draft - pil|.
``--decode device`` compares ``data.decode=device`` instead, run on the CPU
(decoded in batches of 8 items, as a GPU run decodes after the transfer).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from lottery_style.core.config import Decode
from lottery_style.data import PairDataset, list_images, sample_dirs
from lottery_style.data.device_decode import collate_uncut, decode_batch

DEVICE_BATCH = 8


def jpeg_folder(folder: Path, size: tuple[int, int]) -> list[Path]:
    folder.mkdir(parents=True)
    for source in sample_dirs():
        for path in list_images(source, "sample"):
            with Image.open(path) as image:
                image.convert("RGB").resize(size, Image.Resampling.BICUBIC).save(
                    folder / f"{path.stem}.jpg", quality=90
                )
    return list_images(folder, "content")


def crops(files: list[Path], decode: Decode, draws: int, load: int, crop: int) -> np.ndarray:
    """uint8-valued crops [draws x 2, crop, crop, 3] in 0-255 levels."""
    dataset = PairDataset(files, files, load, crop, seed=0, decode=decode)
    if decode is Decode.device:
        images = []
        for start in range(0, draws, DEVICE_BATCH):
            batch = collate_uncut([dataset[g] for g in range(start, min(start + DEVICE_BATCH, draws))])
            decoded = decode_batch(batch, dataset, torch.device("cpu"))
            images += [side for pair in zip(decoded["content"], decoded["style"]) for side in pair]
    else:
        images = [side.image for index in range(draws) for side in dataset.draw(index)]
    return np.stack([image.permute(1, 2, 0).numpy() * 255 for image in images])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="640x480,1600x1200,3000x2000")
    parser.add_argument("--draws", type=int, default=150, help="items (2 crops each) per size")
    parser.add_argument("--load", type=int, default=512)
    parser.add_argument("--crop", type=int, default=256)
    parser.add_argument("--decode", type=Decode, choices=[Decode.draft, Decode.device], default=Decode.draft)
    args = parser.parse_args()
    name = args.decode.value
    with tempfile.TemporaryDirectory() as tmp:
        for text in args.sizes.split(","):
            files = jpeg_folder(Path(tmp) / text, tuple(int(v) for v in text.split("x")))  # type: ignore[arg-type]
            pil, fast = (crops(files, d, args.draws, args.load, args.crop) for d in (Decode.pil, args.decode))
            difference = np.abs(fast - pil)
            print(f"\n== {text}: {len(pil)} crops, levels 0-255 (R, G, B)")
            for path, values in (("pil", pil), (name, fast)):
                mean, std = values.mean((0, 1, 2)), values.std((0, 1, 2))
                per_crop = values.std((1, 2)).mean(0)
                print(
                    f"{path:>6} mean {np.round(mean, 2)}  std {np.round(std, 2)}  per-crop std {np.round(per_crop, 2)}"
                )
            print(f"|{name} - pil|: mean {difference.mean():.3f}, p99 {np.percentile(difference, 99):.1f}, "
                  f"max {difference.max():.0f}; exactly equal pixels {np.mean(difference < 0.5):.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
