"""Iterative magnitude pruning (Frankle & Carbin 2019; Kong et al. 2022, Algorithm 1)."""

from __future__ import annotations

from lottery_style.engine.methods.base import MethodStrategy, RoundInputs, register_method
from lottery_style.pruning.masks import Masks

IMP = "imp"  # the method the controls follow and the report compares with


@register_method(IMP)
class IterativeMagnitudePruning(MethodStrategy):
    """Prune ``rate`` of the surviving weights by the magnitude they reached in the previous round, then rewind."""

    def next_masks(self, inputs: RoundInputs) -> Masks:
        return inputs.own_magnitude_masks()
