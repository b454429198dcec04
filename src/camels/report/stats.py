"""The report's statistics: intervals, paired tests and the share of a reference. numpy only, seeded.

Every random draw comes from numpy's legacy ``RandomState(seed)``, whose stream numpy keeps frozen across
versions and platforms, so the same inputs and seed give the same numbers (and the report the same bytes).
Quantiles are taken by nearest rank on the sorted resampled statistics: the interval of confidence ``c``
is the ``ceil((1-c)/2 * B)``-th and the ``ceil((1+c)/2 * B)``-th of ``B`` sorted values.

* :func:`bootstrap_ci`, :func:`stratified_bootstrap_ci` (a macro-average: BBH over subtasks, TydiQA over
  languages, items redrawn within each group) and :func:`pass_at_k` come from :mod:`camels.core.stats`,
  the same functions the tasks' metrics use; :func:`grouped_ci` picks one of the two by the column's groups.
* :func:`paired_test` -- two models on the items they share: the difference of their (micro or macro)
  averages, a paired bootstrap interval of it and an exact or Monte Carlo sign-flip p-value (which is
  exactly McNemar's exact test when the scores are 0/1 and items weigh the same).
* :func:`share_of_reference` -- the study's "87% of ChatGPT": per benchmark score / reference score,
  averaged over the benchmarks both have; lower-is-better benchmarks compare the complements
  ``(100 - score) / (100 - reference)``.
* :func:`wilson_ci` -- the Wilson score interval of a proportion (human acceptance rates).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from camels.core.stats import INDEX_CHUNK, bootstrap_ci, pass_at_k, stratified_bootstrap_ci

__all__ = ["bootstrap_ci", "stratified_bootstrap_ci", "grouped_ci", "pass_at_k", "paired_test",
           "share_of_reference", "wilson_ci"]

#: Above this many non-zero paired differences the sign-flip p-value is estimated by Monte Carlo.
EXACT_FLIPS_MAX = 16
#: Monte Carlo sign flips (when the exact enumeration is too large).
N_FLIPS = 10_000


def grouped_ci(values: Sequence[float], groups: Sequence[str] | None, *, n_boot: int = 1000, seed: int = 0,
               confidence: float = 0.95) -> tuple[float, float]:
    """:func:`bootstrap_ci` of ``values`` when ``groups`` is None, else :func:`stratified_bootstrap_ci`
    with the values split by their group label (groups in sorted order)."""
    if groups is None:
        return bootstrap_ci(values, n_boot=n_boot, seed=seed, confidence=confidence)
    return stratified_bootstrap_ci(list(split(values, groups).values()), n_boot=n_boot, seed=seed,
                                   confidence=confidence)


def split(values: Sequence[float], groups: Sequence[str]) -> dict[str, list[float]]:
    """The values of each group, groups in sorted order (items in their order)."""
    if len(values) != len(groups):
        raise ValueError(f"{len(values)} values but {len(groups)} group labels")
    out: dict[str, list[float]] = {}
    for v, g in zip(values, groups):
        out.setdefault(g, []).append(float(v))
    return {g: out[g] for g in sorted(out)}


def macro_mean(values: Sequence[float], groups: Sequence[str] | None) -> float:
    """The plain mean (``groups`` None) or the mean of the group means."""
    if groups is None:
        return math.fsum(values) / len(values)
    parts = split(values, groups)
    return math.fsum(math.fsum(v) / len(v) for v in parts.values()) / len(parts)


def wilson_ci(count: int, n: int, *, z: float = 1.959963984540054) -> tuple[float, float]:
    """Wilson score interval of the proportion ``count / n`` (95% by default)."""
    if n <= 0:
        raise ValueError("Wilson interval of no trials")
    p = count / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


# --- paired comparison -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class PairedResult:
    """Model A minus model B on the items both have.

    ``difference`` is A's average minus B's (macro when groups were given); ``ci`` its paired bootstrap
    interval; ``p_value`` two-sided, from ``test`` (``"mcnemar-exact"``, ``"sign-flip-exact"`` or
    ``"sign-flip-mc"``); ``n`` the shared items, ``n_discordant`` those whose scores differ."""

    n: int
    n_discordant: int
    difference: float
    ci: tuple[float, float]
    p_value: float
    test: str


def item_weights(groups: Sequence[str] | None, n: int) -> np.ndarray:
    """Weights ``w`` with ``sum(w * x)`` = the (macro) average of ``x``: ``1/n`` each, or
    ``1 / (G * n_g)`` for an item of group ``g`` among ``G`` groups."""
    if groups is None:
        return np.full(n, 1.0 / n)
    sizes: dict[str, int] = {}
    for g in groups:
        sizes[g] = sizes.get(g, 0) + 1
    return np.asarray([1.0 / (len(sizes) * sizes[g]) for g in groups], dtype=np.float64)


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value for ``b`` and ``c`` discordant pairs: ``2 P(X <= min(b, c))`` for
    ``X ~ Binomial(b + c, 1/2)``, capped at 1 (1 when there is no discordant pair)."""
    m = b + c
    if m == 0:
        return 1.0
    tail = sum(math.comb(m, i) for i in range(min(b, c) + 1))
    return float(min(Fraction(1), Fraction(2 * tail, 2**m)))


def sign_flip_p(d: np.ndarray, w: np.ndarray, *, seed: int = 0, n_flips: int = N_FLIPS) -> tuple[float, str]:
    """Two-sided p-value of the weighted sum ``T = sum(w * d)`` under random sign flips of the paired
    differences ``d`` (the null: the two models are exchangeable on each item). Exact enumeration of all
    ``2^m`` flips of the ``m`` non-zero differences when ``m <= EXACT_FLIPS_MAX``; otherwise ``n_flips``
    seeded random flips with the observed statistic counted among them, ``(1 + hits) / (1 + n_flips)``."""
    keep = d != 0
    x = (w * d)[keep]
    m = len(x)
    if m == 0:
        return 1.0, "sign-flip-exact"
    obs = abs(float(x.sum()))
    tol = 1e-12 * max(1.0, obs)
    if m <= EXACT_FLIPS_MAX:
        signs = np.array(list(itertools.product((1.0, -1.0), repeat=m)), dtype=np.float64)
        stats = np.abs(signs @ x)
        return float(np.count_nonzero(stats >= obs - tol)) / len(stats), "sign-flip-exact"
    rng = np.random.RandomState(seed)
    hits = 0
    step = max(1, INDEX_CHUNK // m)
    for start in range(0, n_flips, step):
        rows = min(step, n_flips - start)
        signs = rng.randint(0, 2, size=(rows, m)) * 2.0 - 1.0
        hits += int(np.count_nonzero(np.abs(signs @ x) >= obs - tol))
    return (1 + hits) / (1 + n_flips), "sign-flip-mc"


def paired_test(a: Mapping[str, float], b: Mapping[str, float], groups: Mapping[str, str] | None = None, *,
                n_boot: int = 1000, seed: int = 0, confidence: float = 0.95) -> PairedResult | None:
    """Compare per-item scores of two models (item id -> score) on the ids both have; None if none.

    * difference: A's average minus B's on the shared items, macro over ``groups`` (item id -> group) when
      given (each group's mean difference, then their mean), as the table's metric is.
    * interval: paired percentile bootstrap of that difference: shared items are redrawn with their two
      scores together (within each group when grouped), ``n_boot`` times.
    * p-value: sign-flip permutation test of the (weighted) mean difference. When every non-zero
      difference has the same size and items weigh the same (0/1 scores, in any unit, under a
      micro-average) the flips' distribution is binomial: this is McNemar's exact test, computed from the
      binomial directly for any number of items; otherwise exact over all flips of up to
      ``EXACT_FLIPS_MAX`` non-zero differences, else Monte Carlo (:func:`sign_flip_p`).
    """
    ids = sorted(set(a) & set(b))
    if not ids:
        return None
    d = np.asarray([float(a[i]) - float(b[i]) for i in ids], dtype=np.float64)
    labels = [groups[i] for i in ids] if groups is not None else None
    w = item_weights(labels, len(ids))
    diff = float(macro_mean(d.tolist(), labels))
    ci = grouped_ci(d.tolist(), labels, n_boot=n_boot, seed=seed, confidence=confidence)
    nonzero = d[d != 0]
    if len(nonzero) == 0 or (np.allclose(np.abs(nonzero), abs(nonzero[0])) and np.allclose(w, w[0])):
        p, test = mcnemar_exact(int(np.count_nonzero(nonzero > 0)), int(np.count_nonzero(nonzero < 0))), \
            "mcnemar-exact"
    else:
        p, test = sign_flip_p(d, w, seed=seed)
    return PairedResult(n=len(ids), n_discordant=int(len(nonzero)), difference=diff, ci=ci, p_value=p, test=test)


# --- share of a reference --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Share:
    """``mean`` of the per-benchmark ratios in ``ratios`` (benchmark -> ratio), or None when there is
    none; ``skipped`` names benchmarks both had but whose ratio is undefined (a reference of 0, or of 100
    for a lower-is-better benchmark)."""

    mean: float | None
    ratios: dict[str, float]
    skipped: tuple[str, ...]

    @property
    def n(self) -> int:
        return len(self.ratios)


def share_of_reference(scores: Mapping[str, float | None], reference: Mapping[str, float | None],
                       lower_is_better: Sequence[str] = (), *, full: float = 100.0) -> Share:
    """The study's share of a reference model: per benchmark ``score / reference``, averaged over the
    benchmarks both have a score for. For a lower-is-better benchmark (ToxiGen's toxic share) the ratio is
    taken of the complements, ``(full - score) / (full - reference)`` (the share of non-toxic outputs
    relative to the reference's), so it stays finite at 0% toxicity and, as for every other benchmark,
    above 1 means better than the reference. Both inputs must be on the same scale (``full`` is its
    maximum: 100 for percentages).

    >>> s = share_of_reference({"a": 40.0, "tox": 10.0}, {"a": 50.0, "tox": 20.0}, ["tox"])
    >>> s.ratios, s.mean
    ({'a': 0.8, 'tox': 1.125}, 0.9625)
    """
    ratios: dict[str, float] = {}
    skipped: list[str] = []
    for key in sorted(set(scores) & set(reference)):
        s, r = scores[key], reference[key]
        if s is None or r is None:
            continue
        if key in lower_is_better:
            s, r = full - s, full - r
        if r == 0:
            skipped.append(key)
            continue
        ratios[key] = s / r
    mean = math.fsum(ratios.values()) / len(ratios) if ratios else None
    return Share(mean=mean, ratios=ratios, skipped=tuple(skipped))
