"""Mask sets and the pruning rules that make them: pure tensor logic, no training code.

A mask set maps a parameter name (as in ``named_parameters``) to a bool tensor of
the parameter's shape, True where the weight survives. Sparsity is always read
from the masks, never by counting zeros: a trained weight can be exactly 0.0.

Every rule prunes only survivors and hits an exact count, ``round(target * N)``
pruned entries, so that "89.2% sparse" means the same number of weights for IMP
and for its random controls, whatever the ties in the scores.

Ties at the pruning threshold (many equal scores: SNIP's exact zeros, weights
that are all zero) are pruned in a random order of their positions drawn from
a seed the caller gives (a run passes its round's control seed), never by
position: a bias by layer order would prune the first layers' tied entries
first. Each tied entry is then equally likely to go, so every layer loses
tied entries in proportion to how many it holds.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Mapping

import torch
from torch import Tensor

Masks = dict[str, Tensor]

# Slack when comparing a schedule's sparsity with a target written as
# 1-(1-p)^r: the float of the target and of the formula can differ in the last bit.
_SCHEDULE_EPS = 1e-12


# ------------------------------------------------------------------ counting
def dense_masks(weights: Mapping[str, Tensor]) -> Masks:
    """All-True masks: round 0 of IMP, nothing pruned yet."""
    return {name: torch.ones_like(w, dtype=torch.bool) for name, w in weights.items()}


def kept_counts(masks: Mapping[str, Tensor]) -> dict[str, int]:
    return {name: int(m.count_nonzero()) for name, m in masks.items()}


def overall_sparsity(masks: Mapping[str, Tensor]) -> float:
    """Pruned fraction over all entries of all masks (0.0 for an empty mask set)."""
    total = sum(m.numel() for m in masks.values())
    return 1.0 - sum(kept_counts(masks).values()) / total if total else 0.0


def sparsity_report(masks: Mapping[str, Tensor], part_of: Callable[[str], str]) -> dict:
    """Sparsity overall, per part (``part_of(name)``, e.g. encoder/decoder) and per layer."""
    kept = kept_counts(masks)
    sizes = {name: m.numel() for name, m in masks.items()}
    part_kept: dict[str, int] = {}
    part_size: dict[str, int] = {}
    for name, size in sizes.items():
        part = part_of(name)
        part_kept[part] = part_kept.get(part, 0) + kept[name]
        part_size[part] = part_size.get(part, 0) + size
    total_weights = sum(sizes.values())
    total_kept = sum(kept.values())

    def sparsity(k: int, n: int) -> float:
        return 1.0 - k / n if n else 0.0

    return {
        "total": sparsity(total_kept, total_weights),
        "parts": {part: sparsity(part_kept[part], part_size[part]) for part in part_size},
        "layers": {name: sparsity(kept[name], sizes[name]) for name in sizes},
        "kept": total_kept,
        "total_weights": total_weights,
    }


# --------------------------------------------------------------- validation
def _check_matching(masks: Mapping[str, Tensor], other: Mapping[str, Tensor], what: str) -> None:
    if set(masks) != set(other):
        missing, extra = sorted(set(masks) - set(other)), sorted(set(other) - set(masks))
        raise ValueError(f"{what} do not match the masks: missing {missing}, unexpected {extra}")
    for name, m in masks.items():
        if m.dtype != torch.bool:
            raise ValueError(f"mask {name!r} has dtype {m.dtype}: expected torch.bool")
        if m.shape != other[name].shape:
            raise ValueError(f"{what} {name!r} has shape {tuple(other[name].shape)}: the mask has {tuple(m.shape)}")


def _check_target(target_sparsity: float) -> None:
    if not 0.0 <= target_sparsity < 1.0:
        raise ValueError(f"target sparsity {target_sparsity} is outside [0, 1)")


# ------------------------------------------------------------------ pruning
def _prune_lowest(scores: Tensor, alive: Tensor, count: int, generator: torch.Generator) -> Tensor:
    """Flat ``alive`` with the ``count`` lowest-scoring survivors removed.

    When more survivors tie at the threshold than are still to be pruned,
    those pruned are the tied ones first in a random order of positions: each
    position gets a uniform key from ``generator`` (one key per entry, drawn
    only when such a tie occurs), and the tied entries with the lowest keys go.
    A key belongs to a position, not to the tie, so a generator seeded alike
    breaks ties alike even when the set of tied entries changes a little (the
    early-bird watch compares such masks step by step). The count is exact.
    """
    if count == 0:
        return alive.clone()
    # Boolean indexing costs about as much as kthvalue itself: skip it while nothing is pruned yet.
    survivors = scores if bool(alive.all()) else scores[alive]
    threshold = torch.kthvalue(survivors, count).values
    if not torch.isfinite(threshold):
        raise ValueError(f"cannot rank surviving scores: the threshold is {threshold.item()} (NaN or inf weights?)")
    below = scores < threshold
    below &= alive
    tied = scores == threshold
    tied &= alive
    keep = alive ^ below
    tied_at = tied.nonzero().squeeze(1)
    still = count - int(below.count_nonzero())
    if still < tied_at.numel():
        keys = torch.rand(scores.numel(), generator=generator, device=generator.device, dtype=torch.float64)
        keys = keys[tied_at.to(keys.device)].to(tied_at.device)
        cut = torch.kthvalue(keys, still).values
        # Two float64 keys equal at the cut (about never: 2^-53 per pair) go by index, to keep the count exact.
        at_cut = (keys == cut).nonzero().squeeze(1)[: still - int((keys < cut).count_nonzero())]
        tied_at = torch.cat([tied_at[keys < cut], tied_at[at_cut]])
    keep[tied_at] = False
    return keep


def _split(flat: Tensor, like: Mapping[str, Tensor]) -> Masks:
    out: Masks = {}
    start = 0
    for name, ref in like.items():
        out[name] = flat[start : start + ref.numel()].view(ref.shape).to(ref.device, copy=True)
        start += ref.numel()
    return out


def _flat_cat(tensors: Iterable[Tensor], device: torch.device) -> Tensor:
    return torch.cat([t.detach().reshape(-1).to(device) for t in tensors])


def _prune_pool(
    scores: Mapping[str, Tensor],
    masks: Mapping[str, Tensor],
    target_sparsity: float,
    by_magnitude: bool,
    generator: torch.Generator,
) -> Masks:
    """Prune the lowest-scoring (or smallest-|score|) survivors of one pool of layers down to ``target_sparsity``."""
    device = next(iter(scores.values())).device
    alive = _flat_cat((masks[name] for name in scores), device)
    pruned_now = alive.numel() - int(alive.count_nonzero())
    wanted = round(target_sparsity * alive.numel())
    if wanted < pruned_now:
        current = pruned_now / alive.numel()
        raise ValueError(f"target sparsity {target_sparsity} is below the current sparsity {current:.6f}")
    flat_scores = _flat_cat(scores.values(), device)
    if flat_scores.dtype != torch.float64:  # SynFlow's float64 scores keep their precision
        flat_scores = flat_scores.float()
    if by_magnitude:
        flat_scores.abs_()
    return _split(_prune_lowest(flat_scores, alive, wanted - pruned_now, generator), scores)


def _prune_by(
    scores: Mapping[str, Tensor],
    masks: Mapping[str, Tensor],
    target_sparsity: float,
    *,
    layerwise: bool,
    by_magnitude: bool,
    tie_seed: int,
) -> Masks:
    """One global pool, or one pool per layer, each breaking its ties with its own generator drawn from ``tie_seed``.

    A pool's generator is the same for the same seed and pool whatever the
    other pools' ties drew, so its tie order is a function of the seed alone.
    """
    _check_target(target_sparsity)
    if not masks:
        return {}
    pools = [{name: scores[name]} for name in masks] if layerwise else [scores]
    pool_seeds = torch.randint(2**62, (len(pools),), generator=torch.Generator().manual_seed(tie_seed)).tolist()
    result: Masks = {}
    for pool, pool_seed in zip(pools, pool_seeds):
        generator = torch.Generator().manual_seed(pool_seed)
        result.update(_prune_pool(pool, masks, target_sparsity, by_magnitude, generator))
    return result


def magnitude_prune(
    weights: Mapping[str, Tensor],
    masks: Mapping[str, Tensor],
    target_sparsity: float,
    layerwise: bool = False,
    *,
    tie_seed: int,
) -> Masks:
    """Prune the smallest-|w| survivors until exactly ``round(target * N)`` entries are pruned.

    Global by default (one ranking over every layer, the paper's protocol);
    ``layerwise`` brings each layer to the target on its own. Entries tied at
    the threshold are pruned in the random order of positions ``tie_seed``
    draws (see the module docstring). Masks come back on the weights' device.
    """
    _check_matching(masks, weights, "weights")
    ordered = {name: weights[name] for name in masks}
    return _prune_by(ordered, masks, target_sparsity, layerwise=layerwise, by_magnitude=True, tie_seed=tie_seed)


def score_prune(
    scores: Mapping[str, Tensor],
    masks: Mapping[str, Tensor],
    target_sparsity: float,
    layerwise: bool = False,
    *,
    tie_seed: int,
) -> Masks:
    """Prune the lowest-scoring survivors until exactly ``round(target * N)`` entries are pruned.

    For saliency scores (SNIP, SynFlow), where a high score means keep; the
    ranking is global unless ``layerwise``, and ``tie_seed`` orders the ties,
    as for :func:`magnitude_prune`.
    """
    _check_matching(masks, scores, "scores")
    ordered = {name: scores[name] for name in masks}
    return _prune_by(ordered, masks, target_sparsity, layerwise=layerwise, by_magnitude=False, tie_seed=tie_seed)


def shuffle_within_layers(masks: Mapping[str, Tensor], generator: torch.Generator) -> Masks:
    """Each layer's survivors moved to random positions of that layer, its count kept (Frankle et al. 2021)."""
    return random_prune_like(kept_counts(masks), dense_masks(masks), generator)


def random_prune_global(masks: Mapping[str, Tensor], target_sparsity: float, generator: torch.Generator) -> Masks:
    """Random survivors pruned with one global count: the random-pruning control without layer counts."""
    scores = {name: torch.rand(m.shape, generator=generator, device=generator.device) for name, m in masks.items()}
    tie_seed = int(torch.randint(2**62, (1,), generator=generator, device=generator.device))
    pruned = _prune_by(scores, masks, target_sparsity, layerwise=False, by_magnitude=False, tie_seed=tie_seed)
    return {name: m.to(masks[name].device) for name, m in pruned.items()}


def random_prune_like(kept: Mapping[str, int], within: Mapping[str, Tensor], generator: torch.Generator) -> Masks:
    """Random positions with IMP's per-layer kept counts, drawn among the survivors in ``within``."""
    if set(kept) != set(within):
        raise ValueError(f"kept counts name {sorted(kept)}: expected the mask names {sorted(within)}")
    result: Masks = {}
    for name, mask in within.items():
        alive = int(mask.count_nonzero())
        if not 0 <= kept[name] <= alive:
            raise ValueError(f"cannot keep {kept[name]} weights of {name!r}: it has {alive} survivors")
        scores = torch.rand(mask.numel(), generator=generator, device=generator.device)
        flat = _prune_lowest(scores, mask.reshape(-1).to(scores.device), alive - kept[name], generator)
        result[name] = flat.view(mask.shape).to(mask.device)
    return result


def mask_factor(mask: Tensor) -> Tensor:
    """The mask as the factor of an in-place multiply, without a copy.

    A bool factor is converted to the other operand's dtype at every call; a
    uint8 view of the same bytes is not, and multiplies ~2.5x faster on CPU
    (the masks are applied twice per training step, see docs/performance.md).
    """
    return mask.view(torch.uint8) if mask.dtype == torch.bool else mask


def apply_masks(params: Mapping[str, Tensor], masks: Mapping[str, Tensor]) -> None:
    """Zero the pruned entries in place (the parameters keep their identity and optimizer links)."""
    _check_matching(masks, params, "parameters")
    with torch.no_grad():
        for name, mask in masks.items():
            params[name].mul_(mask_factor(mask.to(params[name].device)))


# ----------------------------------------------------------------- schedule
def sparsity_schedule(
    rate: float, rounds: int | None, target: float | None, explicit: list[float] | None
) -> list[float]:
    """Target sparsity of rounds 1..R: an explicit list, else ``rate`` per round up to ``target``, else ``rounds``.

    Pruning ``rate`` of the survivors each round gives 1-(1-rate)^r after round r;
    with a target, the last round is capped at it so the run ends exactly there.
    """
    if not 0.0 < rate < 1.0:
        raise ValueError(f"pruning rate {rate} is outside (0, 1)")
    if explicit is not None:
        values = [float(s) for s in explicit]
        if not values:
            raise ValueError("explicit sparsities are empty: expected at least one value in [0, 1)")
        bad = [s for s in values if not 0.0 <= s < 1.0]
        if bad:
            raise ValueError(f"explicit sparsities {bad} are outside [0, 1)")
        if any(b <= a for a, b in itertools.pairwise(values)):
            raise ValueError(f"explicit sparsities {values} are not strictly increasing")
        return values
    if target is not None:
        if not 0.0 < target < 1.0:
            raise ValueError(f"target sparsity {target} is outside (0, 1)")
        schedule: list[float] = []
        while not schedule or schedule[-1] < target - _SCHEDULE_EPS:
            schedule.append(1.0 - (1.0 - rate) ** (len(schedule) + 1))
        schedule[-1] = min(schedule[-1], target)
        return schedule
    if rounds is None or rounds < 0:
        raise ValueError(f"pruning rounds {rounds} must be a count >= 0 when no target or explicit list is given")
    return [1.0 - (1.0 - rate) ** r for r in range(1, rounds + 1)]
