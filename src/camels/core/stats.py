"""Resampling statistics shared by the tasks' metrics and the report: numpy only, seeded, reproducible.

Every random draw comes from numpy's legacy ``RandomState(seed)``, whose stream numpy keeps frozen across
versions and platforms, so the same inputs and seed give the same numbers (and ``camels rescore`` and
``camels report`` the same bytes). Quantiles are taken by nearest rank on the sorted resampled statistics:
the interval of confidence ``c`` is the ``ceil((1-c)/2 * B)``-th and the ``ceil((1+c)/2 * B)``-th of ``B``
sorted values.

* :func:`bootstrap_ci` -- percentile bootstrap interval of a mean (a micro-average).
* :func:`stratified_bootstrap_ci` -- the same for a macro-average (BBH over subtasks, TydiQA over
  languages): items are redrawn *within* each group, group sizes kept, and each resample is again the mean
  of the group means.
* :func:`pass_at_k` -- the unbiased pass@k of one problem from its ``n`` samples and ``c`` passes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction

import numpy as np

INDEX_CHUNK = 4_000_000  # bound the memory of index arrays: about 32 MB at a time


def nearest_rank_interval(stats: np.ndarray, confidence: float) -> tuple[float, float]:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    stats = np.sort(stats)
    b = len(stats)
    alpha = (1 - confidence) / 2
    lo = stats[max(0, math.ceil(alpha * b) - 1)]
    hi = stats[min(b - 1, math.ceil((1 - alpha) * b) - 1)]
    return float(lo), float(hi)


def resampled_means(rng: np.random.RandomState, values: np.ndarray, n_boot: int) -> np.ndarray:
    n = len(values)
    out = np.empty(n_boot, dtype=np.float64)
    step = max(1, INDEX_CHUNK // n)
    for start in range(0, n_boot, step):
        stop = min(n_boot, start + step)
        idx = rng.randint(0, n, size=(stop - start, n))
        out[start:stop] = values[idx].sum(axis=1) / n
    return out


def bootstrap_ci(values: Sequence[float], *, n_boot: int = 1000, seed: int = 0,
                 confidence: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values``.

    ``n_boot`` resamples of all ``n`` values, drawn with replacement; the interval is the nearest-rank
    ``(1-c)/2`` and ``(1+c)/2`` quantiles of the resampled means (see the module doc).

    >>> bootstrap_ci([0.5, 0.5, 0.5])
    (0.5, 0.5)
    """
    vals = np.asarray(values, dtype=np.float64)
    if vals.size == 0:
        raise ValueError("bootstrap of no values")
    rng = np.random.RandomState(seed)
    return nearest_rank_interval(resampled_means(rng, vals, n_boot), confidence)


def stratified_bootstrap_ci(groups: Sequence[Sequence[float]], *, n_boot: int = 1000, seed: int = 0,
                            confidence: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of a macro-average: the mean over groups of each group's mean.

    Each resample redraws every group's items with replacement *within the group* (group sizes kept, groups
    drawn in the order given), so every resampled statistic is a macro-average as the reported one is.
    Limit: with small groups the interval runs short (a group of ``n`` items is resampled with
    ``(n-1)/n`` of its variance, and a group whose items all agree with none): about 92.5-94.5% coverage
    for groups of 10-50 items, far less for a few groups near 0 or 1 (docs/report.md, "Coverage of the
    intervals").

    >>> stratified_bootstrap_ci([[1.0], [0.0, 0.0, 0.0]])
    (0.5, 0.5)
    """
    if not groups or any(len(g) == 0 for g in groups):
        raise ValueError("bootstrap of an empty group")
    rng = np.random.RandomState(seed)
    total = np.zeros(n_boot, dtype=np.float64)
    for g in groups:
        total += resampled_means(rng, np.asarray(g, dtype=np.float64), n_boot)
    return nearest_rank_interval(total / len(groups), confidence)


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k of one problem: ``1 - C(n-c, k) / C(n, k)`` for ``c`` passing samples of ``n``
    (the chance that ``k`` samples drawn without replacement contain a passing one). Exact in integers.

    >>> pass_at_k(20, 1, 10), pass_at_k(5, 2, 2)
    (0.5, 0.7)
    """
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    return float(1 - Fraction(math.comb(n - c, k), math.comb(n, k)))
