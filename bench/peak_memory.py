"""What keeping freed memory in the heap costs in memory: peak RSS and page faults with and without it.

Usage: python bench/peak_memory.py [--shape 8x256] [--modes frozen,plus] [--steps 2]

The setting is process-wide and cannot be undone, and peak RSS is a
per-process high-water mark, so each measurement is a fresh child process
(this script with ``--child``) that builds the AdaIN model, optionally applies
``keep_freed_memory_in_heap`` first, and runs ``--steps`` steps of the
reference training computation with the framework's other speed settings
(``PlainLoop(fast=True)`` of bench/step_time.py). Children run one after the
other; the ratios on/off are printed. Step time is measured by
bench/step_time.py, interleaved, not here.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from step_time import PlainLoop, run_config  # bench/ is on sys.path when run as a script

from lottery_style.engine.speed import keep_freed_memory_in_heap
from lottery_style.models import create_model


def child(batch: int, size: int, plus: bool, steps: int, keep: bool) -> None:
    if keep:
        keep_freed_memory_in_heap()
    with tempfile.TemporaryDirectory() as tmp:
        model = create_model(run_config(batch, size, plus, steps, {}, Path(tmp)).model)
    loop = PlainLoop(model, plus, fast=True)
    torch.manual_seed(0)
    data = {"content": torch.rand(batch, 3, size, size), "style": torch.rand(batch, 3, size, size)}
    loop.step(data)  # the first step builds the optimizer state: faults every process pays once
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(steps):
        loop.step(data)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"peak_rss_mib": usage.ru_maxrss / 1024, "faults_per_step": (usage.ru_minflt - before) / steps}))


def measure(shape: str, mode: str, steps: int, keep: bool) -> dict[str, float]:
    command = [sys.executable, __file__, "--child", "--shape", shape, "--modes", mode, "--steps", str(steps)]
    result = subprocess.run([*command, *(["--keep"] if keep else [])], capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", default="8x256", help="batch x size")
    parser.add_argument("--modes", default="frozen,plus")
    parser.add_argument("--steps", type=int, default=2, help="steps measured after the first")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--keep", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    batch, size = (int(x) for x in args.shape.split("x"))
    if args.child:
        child(batch, size, args.modes == "plus", args.steps, args.keep)
        return
    print(f"{'batch, size, mode':>22} {'peak RSS off':>13} {'on':>9} {'on/off':>7} {'faults/step off':>16} {'on':>9}")
    for mode in args.modes.split(","):
        off, on = (measure(args.shape, mode, args.steps, keep) for keep in (False, True))
        print(f"{f'{batch} at {size} px, {mode}':>22} {off['peak_rss_mib']:>9.0f} MiB {on['peak_rss_mib']:>5.0f} MiB "
              f"{on['peak_rss_mib'] / off['peak_rss_mib']:>7.3f} {off['faults_per_step']:>16.0f} "
              f"{on['faults_per_step']:>9.0f}")  # fmt: skip


if __name__ == "__main__":
    main()
