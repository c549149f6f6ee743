"""Which DDP rank this process is, and waiting for the others, outside any fit.

Between fits (writing tickets and the summary, running branches) there is no
Trainer to ask; the process group Lightning set up outlives its fits, so
torch.distributed answers. In a single process every function is trivial.
"""

from __future__ import annotations

from typing import Any

import torch.distributed as dist


def distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def is_rank_zero() -> bool:
    """Rank 0 of a DDP run, or the only process."""
    return not distributed() or dist.get_rank() == 0


def rank() -> int:
    return dist.get_rank() if distributed() else 0


def gathered(value: Any) -> list[Any]:
    """``value`` of every DDP rank, in rank order (``[value]`` in a single process); every rank must call it."""
    if not distributed():
        return [value]
    values: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(values, value)
    return values


def barrier() -> None:
    """Wait for every DDP rank (a no-op in a single process): one rank writes, the others then read."""
    if distributed():
        dist.barrier()
