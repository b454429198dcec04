"""Metrics against values computed by hand."""

from __future__ import annotations

import math
from itertools import combinations

import pytest

from camels.evals.metrics import (
    accuracy,
    bootstrap_ci,
    exact_match,
    last_number,
    normalize_answer,
    numbers_equal,
    pass_at_k,
    squad_em,
    squad_f1,
    squad_normalize,
    stderr,
)


def _pass_at_k_enumerated(n: int, c: int, k: int) -> float:
    """Share of the k-subsets of n samples (c of them correct) that hold at least one correct sample."""
    samples = [True] * c + [False] * (n - c)
    subsets = list(combinations(range(n), k))
    return sum(any(samples[i] for i in s) for s in subsets) / len(subsets)


@pytest.mark.parametrize("n,c,k", [(5, 1, 1), (5, 2, 2), (6, 3, 2), (8, 1, 4), (10, 0, 3), (7, 5, 3), (4, 4, 1)])
def test_pass_at_k_matches_enumeration(n, c, k):
    assert pass_at_k(n, c, k) == pytest.approx(_pass_at_k_enumerated(n, c, k), abs=1e-12)


def test_pass_at_k_closed_forms_and_large_n():
    assert pass_at_k(20, 3, 1) == pytest.approx(3 / 20)
    # 1 - C(17,10)/C(20,10) = 1 - 19448/184756
    assert pass_at_k(20, 3, 10) == pytest.approx(1 - 19448 / 184756)
    # n large enough that binomial coefficients overflow floats: still finite and exact to 1e-12
    expected = 1 - math.comb(1990, 100) / math.comb(2000, 100)
    assert pass_at_k(2000, 10, 100) == pytest.approx(expected, abs=1e-12)
    assert pass_at_k(3, 1, 3) == 1.0
    with pytest.raises(ValueError):
        pass_at_k(3, 4, 1)
    with pytest.raises(ValueError):
        pass_at_k(3, 1, 4)


def test_accuracy_and_stderr():
    assert accuracy([True, False, True, True]) == 0.75
    # values 1,0,1,1: mean .75, sample var = (3*.0625 + .5625)/3 = .25, se = sqrt(.25/4) = .25
    assert stderr([1, 0, 1, 1]) == pytest.approx(0.25)
    assert stderr([1.0]) == 0.0


def test_bootstrap_is_seeded_and_brackets_the_mean():
    vals = [1.0] * 30 + [0.0] * 70
    a = bootstrap_ci(vals, seed=3, n_resamples=500)
    assert a == bootstrap_ci(vals, seed=3, n_resamples=500)
    assert a != bootstrap_ci(vals, seed=4, n_resamples=500)
    lo, hi = a
    assert lo < 0.3 < hi
    # the normal approximation of a proportion: 0.3 +- 1.96 * sqrt(.3*.7/100) = [0.210, 0.390]
    assert lo == pytest.approx(0.21, abs=0.03) and hi == pytest.approx(0.39, abs=0.03)
    assert bootstrap_ci([2.0, 2.0]) == (2.0, 2.0)


def test_exact_match_normalisation():
    assert normalize_answer("  Hello,   World! ") == "hello world"
    assert exact_match("(B).", "b")
    assert exact_match("Paris", ["London", "paris"])
    assert not exact_match("Paris France", "paris")


def test_last_number_and_numeric_equality():
    assert last_number("He has 1,234 apples and gives 34 away: 1,200.") == "1200"
    assert last_number("The temperature fell to -7 degrees") == "-7"
    assert last_number("It costs $3.50 each") == "3.50"
    assert last_number("no digits here") is None
    # thousands separators as the study removes them: a comma between two digits, left to right, so
    # "1,000,000" is one number but the list "3,5,7" ends in 7 (its second comma is kept), and a comma
    # followed by a space separates numbers
    assert last_number("It grew to 1,000,000.") == "1000000" and last_number("The rolls were 3,5,7") == "7"
    assert last_number("Totals: 12, 15") == "15" and last_number("x,5") == "5"
    assert numbers_equal("18.0", "18") and numbers_equal("1,000", "1000")
    assert not numbers_equal("18", "19") and not numbers_equal(None, "1")


def test_squad_f1_and_em():
    assert squad_normalize("The Cat, a  dog!") == "cat dog"
    assert squad_em("the Eiffel Tower", "Eiffel tower.") == 1.0
    # prediction "big red cat", gold "the red cat sat": overlap {red, cat} = 2; P = 2/3, R = 2/3 -> F1 = 2/3
    assert squad_f1("big red cat", "the red cat sat") == pytest.approx(2 / 3)
    # best over golds
    assert squad_f1("red cat", ["dog", "red cat"]) == 1.0
    assert squad_f1("a", "cat") == 0.0
    # SQuAD v1.1, the study's metric: no shared token is F1 0, even when both answers normalise to nothing
    # (an empty output against the gold "The"); exact match still holds there
    assert squad_f1("", "") == 0.0 and squad_f1("", "The") == 0.0 and squad_f1("the", "The.") == 0.0
    assert squad_em("", "The") == 1.0
    assert squad_em("cat", ["dog", "bird"]) == 0.0


def test_stratified_ci_is_a_macro_average_inside_its_bounds():
    from camels.evals.metrics import stratified_ci

    # all correct in groups of very different sizes: every resample is exactly 1.0
    assert stratified_ci([[1.0] * 30, [1.0]], n_resamples=200) == (1.0, 1.0)
    # constant groups: the macro-average (0.5), not the item mean (2 / 5)
    assert stratified_ci([[1.0, 1.0], [0.0, 0.0, 0.0]], n_resamples=50) == (0.5, 0.5)
    lo, hi = stratified_ci([[1.0, 0.0] * 10, [1.0] * 3], n_resamples=500, seed=3)
    assert 0.5 < lo < 0.75 < hi <= 1.0
    assert stratified_ci([[1.0, 0.0] * 10, [1.0] * 3], n_resamples=500, seed=3) == (lo, hi)
