"""The instability analysis (Frankle et al. 2020) as a branch of an IMP run: see :mod:`lottery_style.engine.instability`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lottery_style.core.config import Range, option
from lottery_style.engine import instability
from lottery_style.engine.methods.base import MethodStrategy, register_method

if TYPE_CHECKING:
    from lottery_style.engine.lottery import LotteryRun


INSTABILITY = "instability"  # the branch's folder name too: <run>/branches/instability/


@dataclass
class InstabilityOptions:
    """``pruning.branches=[instability]`` (Frankle et al. 2020): two copies per mask, E along their straight path."""

    points: int = option(11, help="evenly spaced points of the path between the copies, ends included", valid=Range(low=2))
    stream_seed: int | None = option(None, help="the second copy's training stream; null: the run's stream seed + 1")


@register_method(INSTABILITY, options=InstabilityOptions)
class InstabilityAnalysis(MethodStrategy):
    """Linear mode connectivity of two copies from the rewind point, for the dense network and every IMP mask."""

    follows_imp = True
    accepts_source = True
    weight_rewinding_only = True
    analysis = True

    def analyse(self, run: LotteryRun) -> dict[str, Any]:
        return instability.analyse(run)
