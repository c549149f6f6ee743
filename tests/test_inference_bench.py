"""bench/inference.py runs end to end (``--quick``: 64 px, one repeat) and prints a row for every variant.

Only the table's structure, the dense rows' ratio 1.00 and quantities that do not depend on timing are checked
(FLOPs are counted from shapes, parameters are counts): timings are the bench's output, not a test's.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_onnx_export import needs_deploy_extra

ROOT = Path(__file__).resolve().parent.parent
VARIANTS = ("dense", "weight 89.3%", "channel 25.0%", "channel 50.0%", "channel 75.0%")


@pytest.mark.slow
def test_quick_inference_bench_prints_every_variant_in_both_engines_with_dense_at_ratio_one() -> None:
    needs_deploy_extra()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    command = [sys.executable, str(ROOT / "bench" / "inference.py"), "--quick", "--threads", "1"]
    result = subprocess.run(command, capture_output=True, check=False, text=True, timeout=900, env=env, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = {}
    for line in result.stdout.splitlines():
        words = line.split()
        if words and words[0] == "64":  # size engine variant... median x-dense speed-up GFLOP params (nonzero) rss +fwd
            rows[(words[1], " ".join(words[2:-8]))] = words[-8:]
    expected = [("torch", v) for v in (*VARIANTS, "reference")] + [("onnx", v) for v in VARIANTS]
    assert sorted(rows) == sorted(expected)
    for engine in ("torch", "onnx"):
        assert rows[(engine, "dense")][1:3] == ["1.00", "1.00"]
        flops = [float(rows[(engine, v)][3]) for v in VARIANTS]
        assert flops[0] == flops[1] > flops[2] > flops[3] > flops[4] > 0  # a masked ticket computes its zeros
        total = [float(rows[(engine, v)][4]) for v in VARIANTS]
        nonzero = [float(rows[(engine, v)][5].strip("()")) for v in VARIANTS]
        assert total[0] == total[1] == nonzero[0] > total[2] > total[3] > total[4]
        assert nonzero[1] < 0.2 * total[1]  # 89.3% of the prunable weights (all but biases and the 1x1 conv) are zero
        assert rows[(engine, "dense")][-2:] == ["-", "-"]  # --quick runs no memory children
    assert rows[("torch", "reference")][3:6] == rows[("torch", "dense")][3:6]
