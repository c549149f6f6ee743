"""Checks that a composed config makes sense before anything is built or trained.

The typed schemas already reject misspelled keys, wrong types and unknown enum
values at composition; these are what a type cannot say: rules across fields,
the ranges declared beside schema fields (``config.option(..., valid=...)``), and what the
machine must have for the config (GPUs, image folders). Each failure is one
line naming the key, the value and what was expected.
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
from collections.abc import Sequence
from pathlib import Path

from hydra._internal.utils import get_args_parser
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep
from hydra.errors import HydraException
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.accelerators import CUDAAccelerator
from omegaconf import DictConfig, OmegaConf

from lottery_style.core.conf_dir import CONF_DIR
from lottery_style.core.config import NON_NEGATIVE, ConfigError, Granularity, Rewind, field_metadata
from lottery_style.core.extras import OPTION_COMMANDS, OPTION_EXTRAS, installed, not_installed
from lottery_style.data.datamodule import check_data_config
from lottery_style.data.images import NoImagesError, folder_problem
from lottery_style.data.prepared import read_complete
from lottery_style.engine.methods import METHODS, method_strategy
from lottery_style.engine.methods.imp import IMP
from lottery_style.engine.schedule import round_sparsities
from lottery_style.models import model_class
from lottery_style.tickets.identity import changed_keys
from lottery_style.tickets.paths import ROUND_CONFIG, round_dir
from lottery_style.tickets.storage import is_complete

SEARCH_PATH_OPTIONS = ("--config-dir", "-cd", "hydra.searchpath", "+hydra.searchpath")


def check_choices(arguments: Sequence[str]) -> None:
    """A command-line option of a config group that does not exist (``model=vgg``), or whose optional extra is
    not installed or whose command is missing (``launcher=slurm`` off a SLURM cluster), fails in one line naming
    the real options, the extra or the command, where Hydra would print a dozen lines with its search path (or
    submitit a traceback, after the sweep folder was made). With an extra search path (which may add options)
    and for anything it cannot parse, Hydra alone decides."""
    if any(argument.startswith(SEARCH_PATH_OPTIONS) for argument in arguments):
        return
    try:
        overrides = OverridesParser.create().parse_overrides([a for a in arguments if "=" in a and a[0] != "-"])
    except HydraException:
        return
    for override in overrides:
        group = CONF_DIR / override.key_or_group
        if override.is_delete() or override.package is not None or not group.is_dir():
            continue
        value = override.value()
        options = sorted(path.stem for path in group.glob("*.yaml"))
        for choice in value.list if isinstance(value, ChoiceSweep) else [value]:
            if choice is not None and str(choice) not in options:
                raise ConfigError(f"{override.key_or_group}={choice} is invalid: expected one of {', '.join(options)}")
            option = f"{override.key_or_group}={choice}"
            module, extra = OPTION_EXTRAS.get(option, ("", ""))
            if module and not installed(module):
                raise ConfigError(not_installed(option, module, extra))
            command, provider = OPTION_COMMANDS.get(option, ("", ""))
            if command and shutil.which(command) is None:
                raise ConfigError(
                    f"{option} needs the {command} command of {provider}, which is not on this machine's PATH: "
                    f"expected to run on {provider}'s login node (or no {override.key_or_group}= option to run here)"
                )


# Hydra's commands: it does exactly one of them (``hydra._internal.utils._run_hydra``).
HYDRA_COMMANDS = {"run": "--run", "multirun": "-m", "cfg": "--cfg", "info": "--info", "shell_completion": "--shell-completion"}


def check_hydra_command(arguments: Sequence[str]) -> None:
    """Two of Hydra's commands at once (``-m ... --cfg job``) fail in one line, where Hydra raises a traceback."""
    parser = get_args_parser()
    parser.exit_on_error = False
    try:
        args, _ = parser.parse_known_args(list(arguments))
    except argparse.ArgumentError:
        return  # Hydra's own parser reports it
    given = [f"{flag} {getattr(args, key)}" if key in ("cfg", "info") else flag for key, flag in HYDRA_COMMANDS.items()
             if getattr(args, key) not in (None, False)]  # fmt: skip
    if len(given) > 1:
        raise ConfigError(
            f"{' and '.join(given)} cannot be combined: expected one of -m (run a sweep), --cfg (print the config), "
            "--info, --run; to see one job of a sweep, give its overrides without -m: lottery-style --cfg job <overrides>"
        )


def check_ranges(node: DictConfig, prefix: str = "") -> None:
    """Every option of ``node`` (and its sections) whose schema field declares a ``Range`` holds a value inside it
    (``null``, where the schema allows it, means "not set" and is not a value to check)."""
    schema = OmegaConf.get_type(node)
    for key, raw in node.items_ex(resolve=False):  # resolved below only where checked (output_dir needs Hydra)
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(raw, DictConfig):
            check_ranges(raw, name)
            continue
        valid = field_metadata(schema, str(key)).get("range") if dataclasses.is_dataclass(schema) else None
        value = node[key] if valid is not None else None
        if value is not None and value not in valid:
            raise ConfigError(f"{name}={value} is invalid: expected {valid}")


def check_loss_weights(model: DictConfig) -> None:
    """A loss weight is a map entry, not a schema field with a range: a negative one would reward its loss."""
    for term, weight in model.loss_weights.items():
        if weight not in NON_NEGATIVE:
            raise ConfigError(f"model.loss_weights.{term}={weight} is invalid: expected {NON_NEGATIVE}")


def check_hardware(hardware: DictConfig) -> None:
    """GPU settings on a machine without (enough) GPUs fail here, not in Lightning once the model is built."""
    if str(hardware.accelerator) not in ("gpu", "cuda"):
        return
    if not CUDAAccelerator.is_available():
        raise ConfigError(
            f"hardware.accelerator={hardware.accelerator} is invalid: this machine has no CUDA GPU; "
            "expected hardware=cpu (or hardware=ddp_cpu for DDP on CPU processes)"
        )
    if str(hardware.devices) != "auto":
        devices = OmegaConf.to_object(hardware.devices) if OmegaConf.is_config(hardware.devices) else hardware.devices
        try:
            CUDAAccelerator.parse_devices(devices)
        except MisconfigurationException as error:
            reason = " ".join(str(error).split())
            raise ConfigError(f"hardware.devices={hardware.devices} is invalid: {reason}") from None


def check_image_folders(data: DictConfig) -> None:
    """Each image folder the config names exists and holds an image (a training folder may instead be a
    finished prepared folder of the run's load size, read with ``data.decode=pil``), checked here rather than when the data module lists
    it, which comes after the model and its VGG are built."""
    for key in ("content_dir", "style_dir", "eval_content_dir", "eval_style_dir"):
        training = key in ("content_dir", "style_dir")
        if data[key] is None or (training and read_complete(data[key], f"data.{key}", data.load_size, data.decode)):
            continue
        problem = folder_problem(data[key])
        if problem:
            raise NoImagesError(f"data.{key}={data[key]} {problem}: expected a folder of images, searched recursively")


def check_config(cfg: DictConfig) -> None:
    pruning, training, data = cfg.pruning, cfg.training, cfg.data
    check_hardware(cfg.hardware)
    check_ranges(cfg)  # every section's declared ranges, the model's included
    check_loss_weights(cfg.model)
    if str(pruning.method) not in METHODS:
        raise ConfigError(f"pruning.method={pruning.method} is unknown: expected one of {', '.join(sorted(METHODS))}")
    strategy = method_strategy(str(pruning.method))
    if strategy.prunes:
        if not pruning.scope:
            raise ConfigError("pruning.scope is empty: expected some of [encoder, transform, decoder]")
        try:
            round_sparsities(cfg)
        except ValueError as error:
            raise ConfigError(str(error)) from None
        check_scope_is_trained(cfg)
        check_granularity(cfg)
    check_rewinding(cfg)
    check_branches(cfg)
    if pruning.source_run is not None:
        check_source_run(cfg, len(round_sparsities(cfg)) if strategy.follows_imp else 1)
    check_data_config(data, training.steps)  # one epoch per round: see LotteryRun.build
    check_image_folders(data)
    multiple = model_class(cfg.model.name).size_multiple
    for key in ("crop_size", "eval_size"):
        if data[key] % multiple:
            raise ConfigError(f"data.{key}={data[key]} is invalid for model {cfg.model.name}: expected a multiple of {multiple}")


def check_scope_is_trained(cfg: DictConfig) -> None:
    """A part the optimizer never updates cannot retrain after pruning (and a frozen encoder is the loss VGG)."""
    frozen = model_class(cfg.model.name).frozen_parts(cfg.model)
    pruned_frozen = [str(part) for part in cfg.pruning.scope if str(part) in frozen]
    if pruned_frozen:
        kept = [str(part) for part in cfg.pruning.scope if str(part) not in frozen]
        raise ConfigError(
            f"pruning.scope={[str(p) for p in cfg.pruning.scope]} prunes {', '.join(pruned_frozen)}, which model "
            f"{cfg.model.name} keeps frozen and could not retrain: use pruning.scope=[{','.join(kept)}], or train it "
            f"(model.train_encoder=true for the encoder)"
        )


def check_granularity(cfg: DictConfig) -> None:
    """Channel pruning only on an architecture that says which of its channels must stay (``channel_refusal``)."""
    reason = model_class(cfg.model.name).channel_refusal
    if Granularity(cfg.pruning.granularity) is Granularity.channel and reason:
        raise ConfigError(f"pruning.granularity=channel is refused for model {cfg.model.name}: {reason}")


def check_rewinding(cfg: DictConfig) -> None:
    rewind, k, steps = Rewind(cfg.pruning.rewind), cfg.pruning.rewind_step, cfg.training.steps
    if rewind == Rewind.init and k != 0:
        raise ConfigError(
            f"pruning.rewind_step={k} is unused by pruning.rewind=init: expected 0, or pruning.rewind=step|lr|finetune"
        )
    if not 0 <= k < steps:
        raise ConfigError(f"pruning.rewind_step={k} is invalid: expected 0 <= k < training.steps={steps}")
    methods = [str(name) for name in (cfg.pruning.method, *cfg.pruning.branches)]
    at_rewind_point = [name for name in methods if name in METHODS and METHODS[name].weight_rewinding_only]
    if at_rewind_point and rewind not in (Rewind.init, Rewind.step):
        raise ConfigError(
            f"pruning.rewind={rewind} is invalid for {', '.join(at_rewind_point)}, whose masks are drawn for the rewind point: "
            "expected pruning.rewind=init or step"
        )


def check_branches(cfg: DictConfig) -> None:
    """Which methods may follow which run: controls follow a finished IMP run, IMP trains its own rounds."""
    pruning = cfg.pruning
    strategy = method_strategy(str(pruning.method))
    if strategy.analysis:
        raise ConfigError(
            f"pruning.method={pruning.method} is an analysis of an IMP run: expected pruning=imp "
            f"pruning.branches=[{pruning.method}] (a finished IMP run's rounds are skipped, its branches run)"
        )
    if pruning.branches and str(pruning.method) != IMP:
        raise ConfigError(f"pruning.branches={list(pruning.branches)} is for pruning.method=imp, not {pruning.method}")
    for name in pruning.branches:
        if name not in METHODS or not METHODS[name].accepts_source:
            branches = sorted(n for n, m in METHODS.items() if m.accepts_source)
            raise ConfigError(f"pruning.branches has {name!r}: expected some of {', '.join(branches)}")
    if pruning.source_run is not None and not strategy.accepts_source:
        raise ConfigError(
            f"pruning.source_run={pruning.source_run} is for branches of an IMP run, not pruning.method={pruning.method}: "
            "drop it, or run the controls with pruning.branches=[...]"
        )
    if pruning.source_run is None and strategy.follows_imp:
        raise ConfigError(
            f"pruning.method={pruning.method} is a branch of an IMP run: give pruning.source_run=<finished IMP run "
            f"folder>, or run it inside the IMP job with pruning=imp pruning.branches=[{pruning.method}] "
            f"(the self-contained variant is pruning.method={pruning.method}_own)"
        )


# Result-defining keys in which a branch may differ from the run it follows: what it is, and its own draws.
BRANCH_FREE_KEYS = ("pruning.method", "pruning.source_run", "pruning.seed")


def check_source_run(cfg: DictConfig, rounds_needed: int) -> None:
    """The source run must be finished up to the rounds the branch uses and differ in nothing but the method."""
    source = Path(cfg.pruning.source_run)
    config_file = round_dir(source, 0) / ROUND_CONFIG
    if not config_file.is_file():
        raise ConfigError(f"pruning.source_run={source} is not a run folder: expected {config_file}")
    stored = OmegaConf.load(config_file)
    differing = [key for key, _, _ in changed_keys(stored, cfg) if key not in BRANCH_FREE_KEYS]
    if str(OmegaConf.select(stored, "pruning.method")) != IMP and rounds_needed > 1:
        differing.insert(0, "pruning.method (the source is not an IMP run)")
    if differing:
        raise ConfigError(f"pruning.source_run={source} differs from this run in {', '.join(differing)}: expected its IMP run")
    for index in range(rounds_needed):
        if not is_complete(round_dir(source, index)):
            raise ConfigError(
                f"pruning.source_run={source} has not finished {round_dir(source, index).name} yet: run the IMP job "
                "first (its branches after it), or run them inside it with pruning.branches=[...]"
            )
