# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Lottery tickets in style transfer: sparsity vs quality
#
# Reads run folders written by `lottery-style` (IMP and its controls, single runs or whole
# multirun sweeps) and draws, per model:
#
# 1. the test error E against the weights remaining (%, log scale, the schedule's points as ticks: the
#    field's convention) for IMP and each control, with the dense model's E and each method's extreme
#    sparsity (the highest sparsity that still matches) marked;
# 2. the sparsity of each part that holds weights (encoder, transform, decoder) in every round;
# 3. the stylized grids of the fixed evaluation pairs across rounds.
#
# With `LOTTERY_WANDB_GROUP` set and W&B online, it also reads that W&B group through the public API.
# Open it with `jupytext --to ipynb notebooks/analysis.py`, or run it as a script:
#
# ```bash
# LOTTERY_RUNS=outputs/multirun/sweep_controls python notebooks/analysis.py
# ```

# %% tags=["parameters"]
import os

# Run folders, or folders holding run folders (a sweep), separated by os.pathsep (":").
RUNS = os.environ.get("LOTTERY_RUNS", "outputs")
FIGURES = os.environ.get("LOTTERY_FIGURES", "figures")
# W&B (online only): "entity/project" and a group, e.g. "quickstart/adain-imp-1a2b3c4d".
WANDB_PROJECT = os.environ.get("LOTTERY_WANDB_PROJECT", "lottery-style")
WANDB_GROUP = os.environ.get("LOTTERY_WANDB_GROUP", "")

# %%
import sys
from pathlib import Path

import matplotlib

if "ipykernel" not in sys.modules:
    matplotlib.use("Agg")  # a script or CI: files only
import matplotlib.pyplot as plt

from lottery_style.core.atomic import atomic_savefig
from lottery_style.engine.loggers import wandb_mode
from lottery_style.tools.file_names import file_stem
from lottery_style.tools.plot_axes import remaining, remaining_axis
from lottery_style.tools.report import error_figure, group_runs, load_runs

out = Path(FIGURES)
out.mkdir(parents=True, exist_ok=True)
runs = load_runs(RUNS.split(os.pathsep))
groups = group_runs(runs)
print(f"{len(runs)} runs: " + ", ".join(f"{model}: {', '.join(methods)}" for model, methods in groups.items()))

# %% [markdown]
# ## E vs weights remaining, IMP against the controls
# Mean over seeds (shaded: ± std), the dense round 0 dashed, each method's extreme sparsity across seeds dotted.

# %%
for model, methods in groups.items():
    figure = error_figure(methods, title=model)
    atomic_savefig(figure, out / f"error_vs_sparsity_{file_stem(model)}.png")
figure  # noqa: B018  (a cell's last expression is what Jupyter shows)

# %% [markdown]
# ## Sparsity of each part per round (first run of each method)
# Only the parts that hold weights in the model (AdaIN's transform has none).

# %%
for model, methods in groups.items():
    figure, axes = plt.subplots(1, len(methods), figsize=(4.5 * len(methods), 3.5), squeeze=False, layout="constrained")
    for axis, (method, method_runs) in zip(axes[0], methods.items()):
        rows, parts = method_runs[0].rows, method_runs[0].weight_parts()
        width = 0.8 / len(parts)
        for offset, part in enumerate(parts):
            heights = [100 * (row.get(f"sparsity_{part}") or 0.0) for row in rows]
            axis.bar([row["round"] + (offset - (len(parts) - 1) / 2) * width for row in rows], heights, width, label=part)
        axis.set(title=f"{model} {method}", xlabel="round", ylabel="sparsity (%)", ylim=(0, 100))
        axis.set_xticks([row["round"] for row in rows])
        axis.legend(fontsize="small")
    atomic_savefig(figure, out / f"part_sparsity_{file_stem(model)}.png")

# %% [markdown]
# ## Stylized grids across rounds (content | style | output; first run of each method)

# %%
for model, methods in groups.items():
    for method, method_runs in methods.items():
        run = method_runs[0]
        grids = [(row, run.grid(row["round"])) for row in run.rows if run.grid(row["round"]) is not None]
        if not grids:
            continue
        figure, axes = plt.subplots(1, len(grids), figsize=(3 * len(grids), 3.5), squeeze=False, layout="constrained")
        for axis, (row, path) in zip(axes[0], grids):
            axis.imshow(plt.imread(path))
            axis.set_title(f"round {row['round']}: {100 * row['sparsity']:.1f}%\nE {row['E']:.4g}", fontsize="small")
            axis.axis("off")
        atomic_savefig(figure, out / f"grids_{file_stem(model, method)}.png")

# %% [markdown]
# ## The same run in W&B (online only)
# One W&B run per round: `config.sparsity` and `summary["eval/E"]`; skipped offline.

# %%
def wandb_rounds(project: str, group: str) -> list[tuple[str, float, float]]:
    """(job_type, sparsity, E) of every round run in a W&B group; empty when W&B cannot be reached."""
    if not group or wandb_mode(None) != "online":  # the logger's rule: online only with an API key
        return []
    try:
        import wandb

        found = wandb.Api(timeout=30).runs(project, filters={"group": group})
        return [(r.job_type, r.config["sparsity"], r.summary["eval/E"]) for r in found if r.job_type != "summary"]
    except Exception as error:  # noqa: BLE001  (no key, no network, no such project: the files above are the record)
        print(f"W&B group {group!r} not read: {error}")
        return []


points = wandb_rounds(WANDB_PROJECT, WANDB_GROUP)
if points:
    figure, axis = plt.subplots(figsize=(5.5, 4), layout="constrained")
    for job_type in sorted({p[0] for p in points}):
        chosen = sorted((s, e) for j, s, e in points if j == job_type)
        axis.plot([remaining(s) for s, _ in chosen], [e for _, e in chosen], marker="o", label=job_type)
    remaining_axis(axis, [p[1] for p in points])
    axis.set(title=f"W&B {WANDB_GROUP}", ylabel="E")
    axis.legend()
    atomic_savefig(figure, out / "wandb_error_vs_sparsity.png")

# %%
print("figures:", ", ".join(sorted(p.name for p in out.glob("*.png"))))
