"""Early-bird tickets (You et al. 2020, "Drawing early-bird tickets"): pure tensor logic, no Lightning.

You et al. draw a ticket as soon as the mask at the target sparsity stops
changing: the normalised Hamming distance between the masks of consecutive
epochs stays below a threshold (0.1) for a window of consecutive distances (a
FIFO of 5). They rank BatchNorm scales; style-transfer models have no
BatchNorm, so the mask here is the global weight-magnitude mask, IMP's own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lottery_style.pruning.masks import Masks


def mask_distance(a: Masks, b: Masks) -> float:
    """Normalised Hamming distance: the fraction of all entries where two mask sets differ."""
    if set(a) != set(b) or any(a[name].shape != b[name].shape for name in a):
        raise ValueError(f"mask sets differ in names or shapes: {sorted(a)} and {sorted(b)}")
    total = sum(mask.numel() for mask in a.values())
    return sum(int((a[name] != b[name]).count_nonzero()) for name in a) / total if total else 0.0


@dataclass
class EarlyBird:
    """The masks of one target sparsity seen so far and, once the distance has settled, the drawn ticket.

    Distances keep being recorded after the draw, for the distance-vs-step
    figure; the drawn mask never changes.
    """

    target: float
    threshold: float
    window: int
    steps: list[int] = field(default_factory=list)  # the step of each distance
    distances: list[float] = field(default_factory=list)  # to the previous observation's mask
    last: Masks | None = None
    last_units: Masks | None = None  # ``last`` one entry per unit (a weight or a channel): what the distance counts
    drawn_step: int | None = None
    drawn: Masks | None = None

    def observe(self, step: int, masks: Masks, units: Masks | None = None) -> None:
        """Record ``masks`` at ``step``; ``units``: the same masks one entry per pruning unit (default: ``masks``,
        the weight granularity), between which the distance is measured."""
        units = masks if units is None else units
        if self.last_units is not None:
            self.steps.append(step)
            self.distances.append(mask_distance(self.last_units, units))
            recent = self.distances[-self.window :]
            if self.drawn is None and len(recent) == self.window and max(recent) < self.threshold:
                self.drawn_step, self.drawn = step, masks
        self.last, self.last_units = masks, units

    def ticket(self) -> Masks:
        """The drawn mask, or without a draw the last one seen (the end of round 0: the one-shot magnitude mask)."""
        chosen = self.drawn if self.drawn is not None else self.last
        if chosen is None:
            raise ValueError(f"no mask was observed for target sparsity {self.target}: round 0 saw no checkpoint step")
        return chosen

    def summary(self) -> dict[str, Any]:
        """Everything but the masks, for ``early_bird.json``."""
        return {"target": self.target, "threshold": self.threshold, "window": self.window, "steps": self.steps,
                "distances": self.distances, "drawn_step": self.drawn_step}  # fmt: skip
