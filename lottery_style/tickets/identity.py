"""Which config keys define a run's result: the run folder's hash, the resume check and the report's series.

A run is identified by its *result-defining* keys only, defined once here:

- ``RESULT_KEYS``: dotted keys or prefixes whose values change what a run computes;
- ``DISPLAY_KEYS``: keys inside those prefixes that only change how a run is shown,
  logged, sped up or checkpointed (they may change on resume, and never rename a run).

A new option under a result prefix counts as result-defining unless it is listed
in ``DISPLAY_KEYS``; either way, making a key one or the other is a one-line
change. As in open_lth, a key at its schema (dataclass) default is left out of the
hash, so adding an option with a default does not rename every existing run.

``hardware.devices`` enters resolved to a number of devices (``-1``/``"auto"``
count the machine's devices): the effective batch is devices x nodes x
``data.batch_size`` (per rank), and it changes the result.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from omegaconf import MISSING, DictConfig, OmegaConf

RESULT_KEYS: tuple[str, ...] = (
    "model",  # the whole node: its schema differs per architecture (models/registry.py)
    "pruning",
    "data",
    "training",
    "hardware.devices",  # resolved to a count: devices x nodes x data.batch_size is the effective batch
    "hardware.num_nodes",
    "hardware.precision",
    "hardware.matmul_precision",
    "seed",
)
DISPLAY_KEYS: tuple[str, ...] = (
    "pruning.matching_tolerance",  # the verdict is re-derived from the records
    "pruning.branches",  # controls run after the run, each in its own folder: the run's own rounds are the same
    "data.num_workers",
    "data.grid_pairs",
    "training.checkpoint_every",  # the random stream follows the global step (pruning/callback.py StepSeed)
    "training.log_every",
    "training.progress_bar",
    "training.channels_last",
    "training.compile",
    "training.keep_freed_memory",
)
REPLICATE_KEY = "seed"  # runs equal in every other result-defining key are replicates of one experiment
# Keys that differ between replicates along with the seed: a branch follows the IMP run of its own seed, so its
# pruning.source_run is another folder for every replicate (what it follows is checked equal but for the method).
REPLICATE_KEYS = (REPLICATE_KEY, "pruning.source_run")


def _under(key: str, prefixes: tuple[str, ...]) -> bool:
    return any(key == p or key.startswith(f"{p}.") for p in prefixes)


def is_result_key(key: str) -> bool:
    return _under(key, RESULT_KEYS) and not _under(key, DISPLAY_KEYS)


def _leaves(node: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted key -> plain value; lists are single values (a scope, a schedule)."""
    if isinstance(node, Mapping):
        out: dict[str, Any] = {}
        for key, value in node.items():
            out.update(_leaves(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: node}


def _plain(cfg: DictConfig) -> dict[str, Any]:
    return OmegaConf.to_container(cfg, resolve=True, enum_to_str=True, throw_on_missing=False)  # type: ignore[return-value]


def device_count(accelerator: str, devices: Any) -> int:
    """``hardware.devices`` as a number: ``-1``/``"auto"`` is every device of the accelerator on this machine."""
    from lightning.pytorch.accelerators import CPUAccelerator, CUDAAccelerator

    if isinstance(devices, (list, tuple)):
        return len(devices)
    text = str(devices).strip()
    if text not in ("-1", "auto"):
        return len([d for d in text.split(",") if d.strip()]) if "," in text else int(text)
    if accelerator in ("gpu", "cuda") or (accelerator == "auto" and CUDAAccelerator.is_available()):
        return CUDAAccelerator.auto_device_count()
    return CPUAccelerator.auto_device_count()


def result_leaves(cfg: DictConfig) -> dict[str, Any]:
    """Every result-defining leaf of ``cfg`` (a composed config, or a run's saved ``config.yaml``)."""
    leaves: dict[str, Any] = {}
    for key in RESULT_KEYS:
        node = OmegaConf.select(cfg, key, default=None, throw_on_missing=False)
        value = _plain(node) if isinstance(node, DictConfig) else getattr(node, "value", node)  # an enum leaf
        leaves.update({k: v for k, v in _leaves(value, f"{key}.").items() if is_result_key(k)})
    if "hardware.devices" in leaves:
        accelerator = str(OmegaConf.select(cfg, "hardware.accelerator", default="cpu"))
        leaves["hardware.devices"] = device_count(accelerator, leaves["hardware.devices"])
    return leaves


def schema_defaults(model_name: str) -> dict[str, Any]:
    """Dotted key -> default of the root schema and of ``model_name``'s schema (mandatory keys have none)."""
    from lottery_style.core.config import root_schema
    from lottery_style.models.registry import MODEL_REGISTRY

    root = _plain(root_schema())
    root.pop("model")
    if model_name in MODEL_REGISTRY:
        root["model"] = _plain(MODEL_REGISTRY[model_name].schema())
    return {k: v for k, v in _leaves(root).items() if v != MISSING}


def identity(cfg: DictConfig) -> dict[str, Any]:
    """The result-defining leaves that differ from their schema default: what names and groups a run.

    ``model.name`` stays even at its default: it selects the schema the other defaults come from.
    """
    defaults = schema_defaults(str(OmegaConf.select(cfg, "model.name", default="")))
    return {k: v for k, v in result_leaves(cfg).items() if k == "model.name" or defaults.get(k, MISSING) != v}


def run_id(*, _root_: DictConfig) -> str:
    """A short hash of :func:`identity`: the same experiment maps to the same folder, so a rerun resumes it.

    An OmegaConf resolver (``${run_id:}`` in ``conf/train.yaml``) reading the whole config.
    """
    text = json.dumps(identity(_root_), sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:8]


def changed_keys(old: DictConfig, new: DictConfig) -> list[tuple[str, Any, Any]]:
    """(key, old value, new value) of every result-defining key that differs; a key absent from a config
    (saved before the key existed) counts as its schema default."""
    sides = []
    for cfg in (old, new):
        sides.append((result_leaves(cfg), schema_defaults(str(OmegaConf.select(cfg, "model.name", default="")))))
    (before, old_defaults), (after, new_defaults) = sides
    changes = []
    for key in sorted(before.keys() | after.keys()):
        was, now = before.get(key, old_defaults.get(key)), after.get(key, new_defaults.get(key))
        if was != now:
            changes.append((key, was, now))
    return changes
