"""The paired verdict across replicates: is a ticket no worse than its dense model, within a declared margin?

The replicates of a series (runs differing only in the seed) judge every ticket
and its own seed's dense round 0 on the same fixed pairs, so the per-pair
differences ticket - dense are far less noisy than either error: the content and
style of a pair move both alike. Per seed ``s`` and pair ``p`` the relative
difference is ``r[s, p] = (E_ticket[s, p] - E_dense[s, p]) / mean_p E_dense[s, :]``:
its mean over the pairs is exactly the seed's relative gap in mean E, the quantity
the paper's rule judges, and a pair with a tiny E cannot blow it up as a per-pair
ratio would.

The interval. The seeds are a sample of training runs and the pairs a sample of
images, and every seed is judged on the *same* pairs: the two factors are
crossed, not nested. ``r`` is therefore read as a two-way random-effects layout,
``r[s, p] = mu + a_s + b_p + e_sp``, whose grand mean has variance
``s2_a / S + s2_b / P + s2_e / (S P)``; the components come from the two-way
ANOVA mean squares (a component estimated below 0 is set to 0) and the interval is
Student's t with Satterthwaite's degrees of freedom (Satterthwaite 1946, "An
approximate distribution of estimates of variance components", Biometrics
Bulletin 2:110-114; Searle, Casella & McCulloch 1992, "Variance Components",
ch. 4). With the 3 seeds such series have, the seed term dominates and the
degrees of freedom approach S - 1: the interval is then the t interval over the
seeds' mean differences, as wide as 3 replicates honestly allow. A bootstrap was
not chosen: resampling seeds then pairs within a seed treats shared pairs as
nested, and a bootstrap over 3 clusters has 10 distinct resamples and covers too
rarely (Cameron, Gelbach & Miller 2008, "Bootstrap-based improvements for
inference with clustered errors"). With one seed the interval covers the pairs
only (the seed-to-seed spread cannot be estimated); with one pair, the seeds only.

The verdict is non-inferiority at a declared relative ``margin``: a ticket
matches when the upper end of the two-sided ``CONFIDENCE`` interval lies at or
below the margin, i.e. a ticket more than ``margin`` worse than dense is ruled
out at the one-sided 2.5% level (the rule of the CONSORT extension for
non-inferiority trials, Piaggio et al. 2012, JAMA 308:2594). The default 2%
is a third of the dense model's own spread over seeds in this project's
signature (E ~ 31 +- 2.2, 7%): a ticket inside it is closer to its dense model
than another seed's dense model is.

Only stored per-pair values are read: the verdict is re-derived (and tested) without a model.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import t

from lottery_style.tickets.verdict import CONFIDENCE

MARGIN = 0.02  # the default non-inferiority margin, relative to the dense mean E (see the module docstring)


@dataclass(frozen=True)
class PairedVerdict:
    """One sparsity of one series: the mean relative difference ticket - dense, its interval and the decision."""

    mean: float
    low: float | None  # None with a single seed and a single pair: nothing to estimate a spread from
    high: float | None
    seeds: int
    pairs: int
    df: float | None  # the t interval's degrees of freedom (None when the differences have no spread at all)
    margin: float
    non_inferior: bool


def check_margin(margin: float) -> float:
    if not 0.0 <= margin < 1.0 or math.isnan(margin):
        raise ValueError(f"--margin {margin} is invalid: expected a relative margin in [0, 1), e.g. 0.02 for 2%")
    return margin


def relative_differences(ticket: Sequence[Sequence[float]], dense: Sequence[Sequence[float]]) -> np.ndarray:
    """``r[s, p]``: per seed (row) and pair (column), ticket - dense E over the seed's dense mean E."""
    lengths = {len(row) for row in (*ticket, *dense)}
    if len(ticket) != len(dense) or not ticket or len(lengths) != 1 or 0 in lengths:
        raise ValueError(
            "a paired verdict needs every seed's ticket and dense errors on the same, non-empty pairs: got "
            f"{[len(row) for row in ticket]} ticket and {[len(row) for row in dense]} dense values per seed"
        )
    ticket_E, dense_E = np.asarray(ticket, dtype=np.float64), np.asarray(dense, dtype=np.float64)
    return (ticket_E - dense_E) / dense_E.mean(axis=1, keepdims=True)


def _variance_and_df(r: np.ndarray) -> tuple[float, float | None]:
    """The variance of ``r``'s grand mean under the crossed random-effects layout, and its Satterthwaite df."""
    seeds, pairs = r.shape
    grand = r.mean()
    if seeds == 1 or pairs == 1:  # one factor only: the plain t interval over the other
        values = r.ravel()
        variance = float(values.var(ddof=1)) / values.size
        return variance, float(values.size - 1)
    seed_means, pair_means = r.mean(axis=1), r.mean(axis=0)
    ms_seed = pairs * float(((seed_means - grand) ** 2).sum()) / (seeds - 1)
    ms_pair = seeds * float(((pair_means - grand) ** 2).sum()) / (pairs - 1)
    residual = r - seed_means[:, None] - pair_means[None, :] + grand
    df_error = (seeds - 1) * (pairs - 1)
    ms_error = float((residual**2).sum()) / df_error
    # s2_a/S + s2_b/P + s2_e/(SP) = (MS_e + [MS_seed - MS_e] + [MS_pair - MS_e]) / (SP), a bracket left out where
    # its component would be estimated below 0; as (coefficient x mean square, df) for Satterthwaite's formula
    included = [(ms, df) for ms, df in ((ms_seed, seeds - 1), (ms_pair, pairs - 1)) if ms > ms_error]
    combination = [*included, ((1 - len(included)) * ms_error, df_error)]
    total = sum(value for value, _ in combination)
    variance = total / (seeds * pairs)
    denominator = sum(value**2 / df for value, df in combination)
    return variance, (total**2 / denominator if denominator > 0 else None)


def paired_verdict(
    ticket: Sequence[Sequence[float]], dense: Sequence[Sequence[float]], margin: float = MARGIN,
    confidence: float = CONFIDENCE,
) -> PairedVerdict:  # fmt: skip
    """The paired verdict of one sparsity from its seeds' per-pair E (``ticket[s]`` and ``dense[s]`` on the
    same pairs, the same seed's dense round 0), at the relative ``margin``."""
    r = relative_differences(ticket, dense)
    seeds, pairs = r.shape
    mean = float(r.mean())
    if r.size == 1:
        return PairedVerdict(mean, None, None, seeds, pairs, None, margin, False)
    variance, df = _variance_and_df(r)
    half = 0.0 if variance <= 0 or df is None else float(t.ppf(0.5 + confidence / 2, df)) * math.sqrt(variance)
    low, high = mean - half, mean + half
    return PairedVerdict(mean, low, high, seeds, pairs, df if variance > 0 else None, margin, high <= margin)
