"""The report's statistics against values computed by hand or by brute-force enumeration."""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import numpy as np
import pytest

from camels.report.stats import (
    bootstrap_ci,
    grouped_ci,
    macro_mean,
    mcnemar_exact,
    paired_test,
    pass_at_k,
    share_of_reference,
    sign_flip_p,
    stratified_bootstrap_ci,
    wilson_ci,
)


def exact_quantiles(dist: dict[float, Fraction], confidence: float) -> tuple[float, float]:
    """Nearest-rank quantiles of an exact discrete distribution (the limit of many resamples)."""
    alpha = Fraction(1 - confidence).limit_denominator(1000) / 2
    xs = sorted(dist)
    cum, lo, hi = Fraction(0), None, None
    for x in xs:
        cum += dist[x]
        if lo is None and cum >= alpha:
            lo = x
        if hi is None and cum >= 1 - alpha:
            hi = x
    return lo, hi


def exact_bootstrap_of_mean(values: list[float]) -> dict[float, Fraction]:
    """Every one of the n^n equally likely resamples, enumerated."""
    n = len(values)
    dist: dict[float, Fraction] = {}
    for idx in itertools.product(range(n), repeat=n):
        m = round(sum(values[i] for i in idx) / n, 12)
        dist[m] = dist.get(m, Fraction(0)) + Fraction(1, n**n)
    return dist


def test_bootstrap_matches_exact_enumeration():
    values = [0.0, 0.0, 0.0, 1.0]
    dist = exact_bootstrap_of_mean(values)
    # by hand: the resampled mean is Binomial(4, 1/4) / 4
    assert dist[0.0] == Fraction(81, 256) and dist[0.25] == Fraction(108, 256) and dist[1.0] == Fraction(1, 256)
    assert exact_quantiles(dist, 0.95) == (0.0, 0.75)  # cum: .316 .738 .949 .996 -> 97.5% at 0.75
    assert bootstrap_ci(values, n_boot=20000, seed=1) == (0.0, 0.75)
    # 80%: quantiles at 0.1 and 0.9 -> 0.0 (cum .316) and 0.5 (cum .949)
    assert exact_quantiles(dist, 0.8) == (0.0, 0.5)
    assert bootstrap_ci(values, n_boot=20000, seed=1, confidence=0.8) == (0.0, 0.5)


def test_bootstrap_constant_and_deterministic():
    assert bootstrap_ci([0.3] * 7) == (0.3, 0.3)
    rng = np.random.RandomState(5)
    v = rng.rand(50).tolist()
    assert bootstrap_ci(v, seed=3) == bootstrap_ci(v, seed=3)
    assert bootstrap_ci(v, seed=3) != bootstrap_ci(v, seed=4)
    with pytest.raises(ValueError):
        bootstrap_ci([])


def test_stratified_bootstrap_resamples_within_groups():
    groups = [[1.0], [0.0, 1.0]]
    # by hand: group 1 is always 1; group 2's mean is 0, .5, 1 with 1/4, 1/2, 1/4 -> macro .5, .75, 1
    dist = {0.5: Fraction(1, 4), 0.75: Fraction(1, 2), 1.0: Fraction(1, 4)}
    assert exact_quantiles(dist, 0.95) == (0.5, 1.0)
    assert exact_quantiles(dist, 0.4) == (0.75, 0.75)
    assert stratified_bootstrap_ci(groups, n_boot=20000, seed=0, confidence=0.4) == (0.75, 0.75)
    assert stratified_bootstrap_ci(groups, n_boot=20000, seed=0) == (0.5, 1.0)
    # a pooled (unstratified) bootstrap of the 3 items can reach 0: it measures another figure
    assert bootstrap_ci([1.0, 0.0, 1.0], n_boot=20000, seed=0)[0] == 0.0
    # grouped_ci splits by label in sorted order: same draws as the explicit groups
    assert grouped_ci([0.0, 1.0, 1.0], ["b", "a", "b"], n_boot=500, seed=2) == stratified_bootstrap_ci(
        [[1.0], [0.0, 1.0]], n_boot=500, seed=2)
    assert macro_mean([0.0, 1.0, 1.0], ["b", "a", "b"]) == 0.75
    assert macro_mean([0.0, 1.0, 1.0], None) == pytest.approx(2 / 3)


def test_pass_at_k_by_hand():
    assert pass_at_k(20, 1, 10) == 0.5          # 1 - C(19,10)/C(20,10) = 1 - 1/2
    assert pass_at_k(5, 2, 2) == 0.7            # 1 - C(3,2)/C(5,2) = 1 - 3/10
    assert pass_at_k(5, 0, 3) == 0.0 and pass_at_k(5, 3, 3) == 1.0
    assert pass_at_k(4, 1, 1) == 0.25
    with pytest.raises(ValueError):
        pass_at_k(3, 1, 4)


def test_mcnemar_and_sign_flip_agree_on_01_scores():
    # 3 discordant pairs all for A: p = 2 * (1/8) = 0.25
    assert mcnemar_exact(3, 0) == 0.25
    assert mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(2, 2) == 1.0
    # b=5, c=1: 2 * (C(6,0) + C(6,1)) / 64 = 14/64
    assert mcnemar_exact(5, 1) == 14 / 64
    d = np.array([1.0, 1.0, 1.0, 1.0, 1.0, -1.0, 0.0, 0.0])
    p, test = sign_flip_p(d, np.full(len(d), 1 / len(d)))
    assert (p, test) == (14 / 64, "sign-flip-exact")


def brute_sign_flip(d: list[float]) -> float:
    obs = abs(sum(d))
    hits = total = 0
    for signs in itertools.product((1, -1), repeat=len(d)):
        total += 1
        hits += abs(sum(s * x for s, x in zip(signs, d))) >= obs - 1e-12
    return hits / total


def test_sign_flip_real_valued_by_hand():
    d = [0.5, 1.0, -0.25]
    # the 8 sums are +-1.75, +-1.25, +-0.75, +-0.25; |T| >= 1.25 for 4 of them
    assert brute_sign_flip(d) == 0.5
    p, test = sign_flip_p(np.array(d), np.full(3, 1 / 3))
    assert (p, test) == (0.5, "sign-flip-exact")
    # Monte Carlo above 16 non-zero differences: close to the exact value, and seeded
    rng = np.random.RandomState(0)
    d20 = (rng.rand(20) - 0.3).tolist()
    p_mc, test = sign_flip_p(np.array(d20), np.full(20, 1 / 20), seed=0)
    assert test == "sign-flip-mc" and abs(p_mc - brute_sign_flip(d20)) < 0.02
    assert sign_flip_p(np.array(d20), np.full(20, 1 / 20), seed=0)[0] == p_mc


def test_paired_test_on_shared_items():
    a = {"q1": 1.0, "q2": 1.0, "q3": 0.0, "q4": 1.0, "only_a": 0.0}
    b = {"q1": 0.0, "q2": 1.0, "q3": 0.0, "q4": 0.0, "only_b": 1.0}
    r = paired_test(a, b, n_boot=20000, seed=0)
    assert r.n == 4 and r.n_discordant == 2
    assert r.difference == 0.5                   # (1 + 0 + 0 + 1) / 4
    assert r.test == "mcnemar-exact" and r.p_value == 0.5   # 2 * (1/4)
    # paired bootstrap of d = [1, 0, 0, 1]: mean ~ Binomial(4, 1/2)/4 -> 95% quantiles 0 and 1
    assert exact_quantiles(exact_bootstrap_of_mean([1.0, 0.0, 0.0, 1.0]), 0.95) == (0.0, 1.0)
    assert r.ci == (0.0, 1.0)
    assert paired_test({"x": 1.0}, {"y": 1.0}) is None


def test_paired_test_macro_uses_group_weights():
    a = {"a1": 1.0, "b1": 1.0, "b2": 1.0, "b3": 1.0}
    b = {"a1": 0.0, "b1": 1.0, "b2": 1.0, "b3": 0.0}
    groups = {"a1": "A", "b1": "B", "b2": "B", "b3": "B"}
    r = paired_test(a, b, groups, n_boot=2000, seed=0)
    # macro difference: group A 1.0, group B 1/3 -> (1 + 1/3) / 2
    assert r.difference == pytest.approx(2 / 3)
    # unequal weights (1/2 and 1/6): exact sign flips of w*d = [1/2, 1/6]: |T| >= 2/3 for 2 of 4
    assert r.test == "sign-flip-exact" and r.p_value == 0.5
    assert r.ci[0] == pytest.approx(0.5) and r.ci[1] == pytest.approx(1.0)


def test_share_of_reference_by_hand():
    s = share_of_reference({"mmlu": 40.0, "gsm": 30.0, "tox": 10.0, "only_row": 5.0},
                           {"mmlu": 50.0, "gsm": 20.0, "tox": 20.0, "only_ref": 9.0}, ["tox"])
    # 40/50 = 0.8; 30/20 = 1.5; tox (100-10)/(100-20) = 90/80 = 1.125 -> mean 3.425/3
    assert s.ratios == {"gsm": 1.5, "mmlu": 0.8, "tox": 1.125}
    assert s.mean == pytest.approx(3.425 / 3) and s.n == 3
    z = share_of_reference({"a": 10.0, "b": 5.0}, {"a": 0.0, "b": 10.0})
    assert z.skipped == ("a",) and z.ratios == {"b": 0.5} and z.mean == 0.5
    assert share_of_reference({"a": None}, {"a": 3.0}).mean is None


def test_wilson_by_hand():
    # 8 of 10, z = 1.96: centre (0.8 + 0.19208) / 1.38416, half 1.96 * sqrt(0.016 + 0.009604) / 1.38416
    z = 1.959963984540054
    lo, hi = wilson_ci(8, 10)
    centre = (0.8 + z * z / 20) / (1 + z * z / 10)
    half = z * math.sqrt(0.8 * 0.2 / 10 + z * z / 400) / (1 + z * z / 10)
    assert (lo, hi) == (pytest.approx(centre - half), pytest.approx(centre + half))
    assert round(lo, 4) == 0.4902 and round(hi, 4) == 0.9433
