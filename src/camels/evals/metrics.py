"""Scoring functions shared by the tasks: pure and deterministic.

* :func:`accuracy`, :func:`mean`, :func:`stderr` -- plain aggregates over per-item scores.
* :func:`normalize_answer` / :func:`exact_match` -- case, punctuation and whitespace insensitive match.
* :func:`last_number` / :func:`numbers_equal` -- GSM8K answer extraction (the last number in the output,
  thousands separators removed) and numeric comparison (``"18.0"`` equals ``"18"``; the 2023 code compared
  strings, so ``"18.00"`` was wrong and ``"-5"`` lost its sign).
* :func:`squad_normalize`, :func:`squad_f1`, :func:`squad_em` -- SQuAD v1.1 answer scoring (lowercase,
  drop punctuation and the articles a/an/the, collapse whitespace; F1 over bag-of-token overlap, 0 when
  nothing is shared, even two empty answers; the best score over all gold answers).
* :func:`pass_at_k`, :func:`bootstrap_ci`, :func:`stratified_ci` -- from :mod:`camels.core.stats` (the
  report uses the same ones): the unbiased pass@k, exact in integers; seeded percentile bootstrap intervals.
"""

from __future__ import annotations

import math
import re
import string
from collections import Counter
from collections.abc import Iterable, Sequence
from decimal import Decimal, InvalidOperation

from camels.core import stats
from camels.core.stats import pass_at_k  # noqa: F401 (the tasks find their scoring functions here)


def mean(values: Sequence[float]) -> float:
    if not values:
        raise ValueError("mean of no values")
    return math.fsum(values) / len(values)


def accuracy(correct: Sequence[bool | int | float]) -> float:
    """Share of items scored correct (``True``/1)."""
    return mean([float(c) for c in correct])


def stderr(values: Sequence[float]) -> float:
    """Standard error of the mean: sample standard deviation (n - 1) over sqrt(n); 0 for n < 2."""
    n = len(values)
    if n < 2:
        return 0.0
    m = mean(values)
    var = math.fsum((v - m) ** 2 for v in values) / (n - 1)
    return math.sqrt(var / n)


def bootstrap_ci(
    values: Sequence[float], *, confidence: float = 0.95, n_resamples: int = 1000, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values`` (:func:`camels.core.stats.bootstrap_ci`).

    >>> bootstrap_ci([1.0, 1.0, 1.0])
    (1.0, 1.0)
    """
    return stats.bootstrap_ci(values, n_boot=n_resamples, seed=seed, confidence=confidence)


def stratified_ci(groups: Sequence[Sequence[float]], *, n_resamples: int = 1000, seed: int = 0,
                  confidence: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of the group means, items redrawn within each group
    (:func:`camels.core.stats.stratified_bootstrap_ci`): all-correct items give ``(1.0, 1.0)`` whatever the
    group sizes."""
    return stats.stratified_bootstrap_ci(groups, n_boot=n_resamples, seed=seed, confidence=confidence)


# --- exact match ---------------------------------------------------------------------------------------
_PUNCT = set(string.punctuation)


def normalize_answer(text: str) -> str:
    """Lowercase, drop ASCII punctuation, collapse whitespace.

    >>> normalize_answer("  The Answer: (B)! ")
    'the answer b'
    """
    text = "".join(ch for ch in text.lower() if ch not in _PUNCT)
    return " ".join(text.split())


def exact_match(prediction: str, gold: str | Iterable[str]) -> bool:
    """True when the normalised prediction equals the normalised gold (or any of several golds)."""
    golds = [gold] if isinstance(gold, str) else list(gold)
    p = normalize_answer(prediction)
    return any(p == normalize_answer(g) for g in golds)


# --- numbers (GSM8K) -----------------------------------------------------------------------------------
_NUMBER = re.compile(r"[-+]?(?:\d+(?:\.\d+)?|\.\d+)")
_DIGIT_COMMA = re.compile(r"(\d),(\d)")


def last_number(text: str) -> str | None:
    r"""The last number in ``text`` after removing thousands separators, or ``None``.

    A separator is a comma between two digits, removed left to right as the study does
    (``re.sub(r"(\d),(\d)", ...)``): ``"1,000,000"`` is one number, while in a list written
    ``"3,5,7"`` the second comma stays (its left digit was already used), so the last number is 7.

    >>> last_number("She pays 2 * $1,250 = $2,500. So the answer is 2500.")
    '2500'
    >>> last_number("The answer is -3.5") , last_number("no digits"), last_number("rolls 3,5,7")
    ('-3.5', None, '7')
    """
    found = _NUMBER.findall(_DIGIT_COMMA.sub(r"\1\2", text))
    return found[-1] if found else None


def numbers_equal(a: str | None, b: str | None) -> bool:
    """Numeric equality of two number strings (``"18.0" == "18"``); False when either is missing."""
    if a is None or b is None:
        return False
    try:
        return Decimal(a.replace(",", "")) == Decimal(b.replace(",", ""))
    except InvalidOperation:
        return a.strip() == b.strip()


# --- SQuAD ---------------------------------------------------------------------------------------------
_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)


def squad_normalize(text: str) -> str:
    """SQuAD answer normalisation: lowercase, remove punctuation, remove articles, collapse whitespace.

    >>> squad_normalize("The  Eiffel-Tower!")
    'eiffeltower'
    """
    text = text.lower()
    text = "".join(ch for ch in text if ch not in _PUNCT)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def _f1_one(prediction: str, gold: str) -> float:
    p = squad_normalize(prediction).split()
    g = squad_normalize(gold).split()
    # SQuAD v1.1 (the study's ``evaluate`` "squad" metric): no common token is 0, also when both sides are
    # empty after normalisation (v2.0's script would give 1 there)
    overlap = sum((Counter(p) & Counter(g)).values())
    if overlap == 0:
        return 0.0
    precision = overlap / len(p)
    recall = overlap / len(g)
    return 2 * precision * recall / (precision + recall)


def squad_f1(prediction: str, golds: str | Iterable[str]) -> float:
    """Token-overlap F1 of the normalised texts, best over the gold answers."""
    golds = [golds] if isinstance(golds, str) else list(golds)
    return max(_f1_one(prediction, g) for g in golds)


def squad_em(prediction: str, golds: str | Iterable[str]) -> float:
    """1.0 when the normalised prediction equals a normalised gold answer."""
    golds = [golds] if isinstance(golds, str) else list(golds)
    p = squad_normalize(prediction)
    return float(any(p == squad_normalize(g) for g in golds))


