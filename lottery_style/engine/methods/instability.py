"""The instability analysis (Frankle et al. 2020) as a branch of an IMP run: see :mod:`lottery_style.engine.instability`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lottery_style.core.config import Method
from lottery_style.engine import instability
from lottery_style.engine.methods.base import MethodStrategy, register_method

if TYPE_CHECKING:
    from lottery_style.engine.lottery import LotteryRun


@register_method(Method.instability)
class InstabilityAnalysis(MethodStrategy):
    """Linear mode connectivity of two copies from the rewind point, for the dense network and every IMP mask."""

    follows_imp = True
    accepts_source = True
    weight_rewinding_only = True
    analysis = True

    def analyse(self, run: LotteryRun) -> dict[str, Any]:
        return instability.analyse(run)
