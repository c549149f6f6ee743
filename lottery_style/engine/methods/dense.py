"""Dense training only: the round 0 a ticket must match."""

from __future__ import annotations

from lottery_style.engine.methods.base import MethodStrategy, register_method


@register_method("dense")
class DenseOnly(MethodStrategy):
    prunes = False
