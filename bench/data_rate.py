"""Training images per second per core on each decode path, and the cores a GPU step rate needs.

Usage: python bench/data_rate.py [--sizes 640x480,1600x1200,3000x2000] [--draws 12] [--repeats 5]
                                 [--gpu-steps-per-s 100] [--batch 8] [--load 512] [--crop 256]

One thread in one process, so rates are per core. Each size gets a folder of
JPEGs (quality 90) made from the bundled sample photos upscaled with bicubic
resampling (a photo's JPEG decodes like a photo's, noise would not). Paths, all
through ``PairDataset.draw`` (the loader's per-item work: choose the file,
decode, resize, crop, to tensor) with the same seed, hence the same files and
crops:

- ``pil``: today's path (``data.decode=pil``): full decode, whole square resize, crop;
- ``draft``: ``data.decode=draft``: JPEG DCT scaling to >= the load size, resize of the crop's box only;
- ``decode_jpeg``: ``torchvision.io.decode_jpeg`` (libjpeg-turbo, like PIL: the same decoded pixels)
  then ``pil``'s resize, per item in the loader;
- ``device-cpu``: ``data.decode=device`` with device cpu, the loader's draw (header parse, bytes read)
  plus the batched decode, resize and crop (``decode_batch``, batches of ``--batch`` items) that a GPU
  run does on the GPU; ``device-worker``: its loader part alone, what is left on the CPU cores when a
  GPU decodes (the GPU's own rate cannot be measured here);
- ``prepared``: a folder made by ``lottery-style prepare-data`` (raw uint8 ``.npy``, memory-mapped
  crop), plus the formats it was chosen over: ``prepared-png`` (lossless) and ``prepared-jpeg95``
  (lossy), each the same square resize, opened, cropped and converted.

The paths alternate within every repeat (medians are printed) and every ratio
is to ``pil`` measured in the same repeats, because other processes share the
cores. A GPU consumes ``steps/s x batch x 2`` images/s (a content and a style
image per sample): the last column divides that by each path's rate.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torchvision.transforms.functional as TF
from PIL import Image
from torchvision.io import decode_jpeg

from lottery_style.core.config import Decode
from lottery_style.data import PairDataset, list_images, sample_dirs
from lottery_style.data.crops import square_resize
from lottery_style.data.device_decode import collate_uncut, decode_batch
from lottery_style.data.prepare import prepare_folder
from lottery_style.data.prepared import read_prepared

SEED = 3
CPU = torch.device("cpu")


def jpeg_folder(folder: Path, size: tuple[int, int]) -> list[Path]:
    """The sample content photos as JPEGs at ``size`` (quality 90, as typical web images)."""
    folder.mkdir(parents=True)
    for path in list_images(sample_dirs()[0], "content"):
        with Image.open(path) as image:
            image.convert("RGB").resize(size, Image.Resampling.BICUBIC).save(folder / f"{path.stem}.jpg", quality=90)
    return list_images(folder, "content")


class DecodeJpegDataset(PairDataset):
    """``PairDataset`` with torchvision's JPEG decoder in place of PIL's (the same pixels: both are
    libjpeg-turbo with the same settings), then ``pil``'s whole square resize: the same files and crop
    positions."""

    def __init__(self, files: list[Path], load: int, crop: int) -> None:
        super().__init__(files, files, load, crop, SEED)
        for source in self.sources.values():
            source.open = lambda index: decode_jpeg(torch.from_numpy(np.fromfile(files[index], np.uint8)))  # type: ignore[method-assign]
            source.crop = self.crop  # type: ignore[method-assign]

    def crop(self, image: torch.Tensor, top: int, left: int) -> torch.Tensor:
        square = square_resize(Image.fromarray(image.permute(1, 2, 0).numpy()), self.load_size)
        return TF.to_tensor(square.crop((left, top, left + self.crop_size, top + self.crop_size)))


class EncodedDataset(PairDataset):
    """Crops from the square resizes stored in an image format (PNG or JPEG) in memory, to compare formats."""

    def __init__(self, files: list[Path], load: int, crop: int, save: dict[str, object]) -> None:
        super().__init__(files, files, load, crop, SEED)
        blobs = []
        for path in files:
            buffer = io.BytesIO()
            square_resize(Image.open(path).convert("RGB"), load).save(buffer, **save)
            blobs.append(buffer.getvalue())
        self.bytes_per_image = statistics.mean(len(blob) for blob in blobs)
        for source in self.sources.values():
            source.open = lambda index: Image.open(io.BytesIO(blobs[index]))  # type: ignore[method-assign]
            source.crop = lambda image, top, left: TF.to_tensor(image.crop((left, top, left + crop, top + crop)))  # type: ignore[method-assign]


class DeviceDecodeDataset(PairDataset):
    """``data.decode=device``: ``load`` runs the loader's draws and then, in batches, the decode, resize and crop
    a GPU run does on its device after the transfer; on ``device`` (the CPU: the path's CPU equivalent)."""

    def __init__(self, files: list[Path], load: int, crop: int, batch: int, device: torch.device = CPU) -> None:
        super().__init__(files, files, load, crop, SEED, Decode.device)
        self.batch, self.device = batch, device

    def load(self, items: range) -> None:
        for start in range(items.start, items.stop, self.batch):
            batch = collate_uncut([self[g] for g in range(start, min(start + self.batch, items.stop))])
            decode_batch(batch, self, self.device)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)  # the crops exist only once the queued kernels ran


def images_per_second(dataset: PairDataset, first: int, draws: int) -> float:
    """Images (2 per item) per second through the loader's work for items ``first``... (and the batched
    decode for ``device-cpu``)."""
    items = range(first, first + draws)
    start = time.perf_counter()
    if isinstance(dataset, DeviceDecodeDataset):
        dataset.load(items)
    else:
        for index in items:
            dataset.draw(index)
    return 2 * draws / (time.perf_counter() - start)


def paths(
    files: list[Path], root: Path, load: int, crop: int, batch: int
) -> tuple[dict[str, PairDataset], dict[str, float]]:
    """Every path's dataset over ``files``, and the bytes per image each keeps on disk."""
    start = time.perf_counter()
    prepare_folder(files[0].parent, root / "prepared", load, workers=1, progress=False)
    prepare_seconds = (time.perf_counter() - start) / len(files)
    prepared = read_prepared(root / "prepared")
    assert prepared is not None
    targets = prepared.targets()
    datasets: dict[str, PairDataset] = {
        "pil": PairDataset(files, files, load, crop, SEED, Decode.pil),
        "draft": PairDataset(files, files, load, crop, SEED, Decode.draft),
        "decode_jpeg": DecodeJpegDataset(files, load, crop),
        "device-worker": PairDataset(files, files, load, crop, SEED, Decode.device),
        "device-cpu": DeviceDecodeDataset(files, load, crop, batch),
        "prepared": PairDataset(files, files, load, crop, SEED, prepared={"content": targets, "style": targets}),
        "prepared-png": EncodedDataset(files, load, crop, {"format": "PNG", "compress_level": 1}),
        "prepared-jpeg95": EncodedDataset(files, load, crop, {"format": "JPEG", "quality": 95}),
    }
    sizes = {
        "pil": statistics.mean(path.stat().st_size for path in files),
        "prepared": statistics.mean(path.stat().st_size for path in targets if path is not None),
        "prepare_s": prepare_seconds,
    }
    sizes.update({name: d.bytes_per_image for name, d in datasets.items() if isinstance(d, EncodedDataset)})
    return datasets, sizes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="640x480,1600x1200,3000x2000", help="JPEG sizes WxH, comma separated")
    parser.add_argument("--draws", type=int, default=12, help="items (2 images each) per path per repeat")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--load", type=int, default=512, help="data.load_size")
    parser.add_argument("--crop", type=int, default=256, help="data.crop_size")
    parser.add_argument(
        "--gpu-steps-per-s", type=float, default=100.0, help="training steps per second the GPU(s) take"
    )
    parser.add_argument("--batch", type=int, default=8, help="samples per step (all GPUs together)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    demand = args.gpu_steps_per_s * args.batch * 2
    print(f"one core (1 thread), load {args.load}, crop {args.crop}, load average {os.getloadavg()[0]:.1f}; "
          f"GPU demand {args.gpu_steps_per_s:g} steps/s x batch {args.batch} x 2 = {demand:g} images/s")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        for text in args.sizes.split(","):
            size = tuple(int(v) for v in text.split("x"))
            root = Path(tmp) / text
            files = jpeg_folder(root / "jpeg", size)  # type: ignore[arg-type]
            datasets, sizes = paths(files, root, args.load, args.crop, args.batch)
            rates: dict[str, list[float]] = {name: [] for name in datasets}
            for repeat in range(args.repeats):
                for name, dataset in datasets.items():
                    rates[name].append(images_per_second(dataset, repeat * args.draws, args.draws))
            ratios = {
                name: statistics.median(a / b for a, b in zip(values, rates["pil"])) for name, values in rates.items()
            }
            print(
                f"\n== {text} JPEG (q90, {sizes['pil'] / 1e3:.0f} kB); "
                f"prepare-data: {1 / sizes['prepare_s']:.1f} images/s per core, once"
            )
            print(f"{'path':>18} {'images/s/core':>14} {'x pil':>6} {'cores for GPU':>14} {'kB/image':>9}")
            for name, values in rates.items():
                rate = statistics.median(values)
                stored = sizes.get(name)
                print(f"{name:>18} {rate:>14.1f} {ratios[name]:>6.2f} {demand / rate:>14.1f} "
                      f"{'' if stored is None else f'{stored / 1e3:.0f}':>9}")  # fmt: skip


if __name__ == "__main__":
    main()
