"""What a method is: how each pruned round gets its mask and its starting weights.

Modelled on open_lth's pruning strategies and lottery branches: the driver
(:mod:`lottery_style.engine.lottery`) walks the rounds and trains; a method only
answers two questions per round from what the run has recorded so far
(:class:`RoundInputs`). A method registers itself with :func:`register_method`,
its options too, so a new control is one new file (plus the group file
``conf/pruning/<name>.yaml`` that selects it) and ``pruning=<name>`` runs it.

Branches (open_lth's word) are methods that follow an IMP run: they take its
masks (or its per-layer counts) round by round and reuse its dense round 0 and
rewind point instead of training their own, so a control differs from the
ticket it controls only in what it is meant to test.

Two optional hooks serve what is not a per-round mask rule:
:meth:`MethodStrategy.round_zero_callbacks` watches the dense round 0 (the
early-bird ticket's mask distance), and an ``analysis`` kind replaces the
branch run by its own measurement (:meth:`MethodStrategy.analyse`, the
instability analysis), reusing the driver's fits.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import torch
from torch import Tensor

from lottery_style.core.config import PRUNING_SECTIONS, Rewind
from lottery_style.pruning.masks import Masks
from lottery_style.pruning.pruner import Pruner

if TYPE_CHECKING:
    from lightning.pytorch import Callback
    from omegaconf import DictConfig

    from lottery_style.engine.lottery import LotteryRun
    from lottery_style.models.base import StyleTransferModule

State = dict[str, Tensor]


@dataclass
class RoundInputs:
    """Everything a method may use to set up round ``index`` (>= 1) of a run.

    ``previous_weights`` are the weights round ``index - 1`` ended with (for
    round 1, the dense round 0's); ``rewind_point`` the weights at step 0, or at
    step k for ``rewind=step``. ``source_masks`` is the followed IMP run's mask of
    this round (branches only). ``fresh_state`` returns newly initialised
    weights of the pruned scope in the run's own encoder layout, drawn from
    ``generator``.

    Pruning at initialisation scores the rewind point, so the driver lends
    what scoring needs and nothing more (never the Trainer): ``rewind_model``
    returns the run's model holding the dense rewind point (the driver sets the
    round's own weights after :meth:`MethodStrategy.next_masks`), and
    ``training_batch`` the batch the training stream gives at the rewind point.
    ``run_dir`` is the run's folder, for what a watch of its round 0 recorded.
    Ties in any ranking are broken by :attr:`tie_seed`, and every mask is made by :attr:`pruner`
    (``pruning.granularity``'s unit: a weight or a conv's output channel).
    """

    index: int
    target: float
    layerwise: bool
    rewind: Rewind
    scope_names: frozenset[str]
    previous_masks: Masks
    previous_weights: State
    dense_weights: State
    rewind_point: State
    generator: torch.Generator
    fresh_state: Callable[[], State]
    source_masks: Masks | None = None
    rewind_model: Callable[[], StyleTransferModule] | None = None
    training_batch: Callable[[], dict[str, Tensor]] | None = None
    run_dir: Path | None = None  # the run's folder: what its round 0 recorded (early-bird masks)
    pruner: Pruner = field(default_factory=Pruner)  # pruning.granularity's rules: every mask comes from it

    def scope_of(self, state: State) -> State:
        """The prunable scope weights of a full trainable state, in its (the model's registration) order."""
        return {name: tensor for name, tensor in state.items() if name in self.scope_names}

    @property
    def tie_seed(self) -> int:
        """The seed of the random order in which a ranking prunes tied scores: the round's control seed.

        The tie order is drawn from generators of its own (see
        :mod:`lottery_style.pruning.masks`), so breaking ties draws nothing
        from :attr:`generator` and a control's random positions stay the same.
        """
        return self.generator.initial_seed()

    def own_magnitude_masks(self) -> Masks:
        """IMP's next mask on this run's own trajectory: the previous round's weights ranked by magnitude."""
        weights = self.scope_of(self.previous_weights)
        return self.pruner.magnitude(weights, self.previous_masks, self.target, self.layerwise, tie_seed=self.tie_seed)


class MethodStrategy:
    """One method: the next round's mask and starting weights. Subclasses override what differs."""

    name: ClassVar[str]
    prunes: ClassVar[bool] = True  # False: a dense run, round 0 only
    follows_imp: ClassVar[bool] = False  # a branch that needs an IMP run's masks (pruning.source_run)
    accepts_source: ClassVar[bool] = False  # may reuse a source run's dense round 0 (branches, oneshot)
    weight_rewinding_only: ClassVar[bool] = False  # its masks are drawn for the rewind point: rewind=init|step only
    analysis: ClassVar[bool] = False  # an analysis of an IMP run (pruning.branches only), not a mask method

    def next_masks(self, inputs: RoundInputs) -> Masks:
        raise NotImplementedError

    def analyse(self, run: LotteryRun) -> dict[str, Any]:
        """An analysis kind's whole branch run (it trains and evaluates with the driver's fits): its results."""
        raise NotImplementedError

    def round_zero_callbacks(
        self, cfg: DictConfig, targets: list[float], names: list[str], ticket_dir: Path, pruner: Pruner
    ) -> list[Callback]:
        """Callbacks that watch the dense round 0 of a run (early-bird tickets), given the schedule's targets, the
        names of the scope's masked parameters and the run's pruner; none by default."""
        return []

    def start_weights(self, inputs: RoundInputs) -> State:
        """The round's weights before masking: the rewind point, or trained weights for LR rewinding and fine-tuning."""
        if inputs.rewind in (Rewind.init, Rewind.step):
            return inputs.rewind_point
        return inputs.previous_weights


class BranchOfImp(MethodStrategy):
    """A control that follows an IMP run round by round (``pruning.source_run`` or ``pruning.branches``)."""

    follows_imp = True
    accepts_source = True

    def imp_masks(self, inputs: RoundInputs) -> Masks:
        """The followed IMP run's mask of this round."""
        if inputs.source_masks is None:
            raise ValueError(f"{self.name} follows an IMP run: its round {inputs.index} masks were not given")
        return inputs.source_masks


METHODS: dict[str, type[MethodStrategy]] = {}
M = TypeVar("M", bound=type[MethodStrategy])


def register_method(name: str, options: type | None = None) -> Callable[[M], M]:
    """Class decorator: make ``pruning.method=<name>`` (and ``pruning.branches=[<name>]``) use this strategy.

    ``options``, a dataclass of the method's own options (``core.config.option`` fields, a docstring saying
    whose options they are), becomes the section ``pruning.<name>`` of every config, typed and listed by
    ``lottery-style options pruning``: a method is one module, its options included, plus its
    ``conf/pruning/<name>.yaml`` that selects it.
    """

    def decorate(cls: M) -> M:
        if name in METHODS:
            raise ValueError(f"method name {name!r} is registered twice")
        if options is not None:
            if not dataclasses.is_dataclass(options) or not (options.__doc__ or "").strip():
                raise TypeError(f"options of method {name!r} must be a dataclass with a docstring, not {options!r}")
            PRUNING_SECTIONS[name] = options
        cls.name = name
        METHODS[name] = cls
        return cls

    return decorate


def method_strategy(name: str) -> MethodStrategy:
    if name not in METHODS:
        raise ValueError(f"pruning.method={name} is unknown: expected one of {', '.join(sorted(METHODS))}")
    return METHODS[name]()
