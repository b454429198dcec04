"""The numbers of a human pairwise study: acceptance, win/tie/loss with intervals, and agreement.

Pure functions over plain records (no database, no web), so each is checked against hand-computed cases.

Rules (the study's, generalised to any number of annotators per pair):

* **Preference** is collapsed to three outcomes: A wins (A clearly or slightly better), tie, B wins.
* **Acceptance rate** of a model: the share of annotations that call its response acceptable.
* **Win / tie / loss**: shares of annotations per outcome; the **win rate** counts a tie as half a win.
* **Agreement between annotators** on an item annotated by two or more people: over every two annotators
  of the item, *strict* agreement is 1 when their outcomes are equal, else 0; *relaxed* agreement also
  gives 0.5 when exactly one of them said tie (the study's "ties as half"). Each item's mean over its
  annotator pairs, averaged over items (with two annotators per item this is the study's figure exactly).
  Acceptance agreement is the same strict rule on each model's yes/no, averaged over the two models.
* **Agreement with a judge**: the same strict/relaxed rule between each human annotation and the judge's
  verdict on that item, an item's mean over its annotations, averaged over items.

Intervals are 95% Wilson score intervals for shares, and a normal interval for the win rate (mean of
1 / 0.5 / 0 per annotation). They treat annotations as independent; when several annotators see the same
item their answers correlate, so with k > 1 the intervals are somewhat narrower than they should be.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import combinations

Z95 = 1.959963984540054


@dataclass(frozen=True)
class HumanRecord:
    """One annotation in study terms: preference on -2..2 (negative = A better, 0 = tie)."""

    item: str
    annotator: str
    acceptable_a: bool
    acceptable_b: bool
    preference: int


def outcome(preference: int) -> int:
    """-1 = A wins, 0 = tie, 1 = B wins (the 5-point scale collapsed to three outcomes)."""
    return (preference > 0) - (preference < 0)


def wilson(successes: float, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a share ``successes / n``; ``(nan, nan)`` when n is 0.

    >>> [round(x, 4) for x in wilson(7, 10)]
    [0.3968, 0.8922]
    """
    if n == 0:
        return math.nan, math.nan
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def share(count: int, n: int) -> dict:
    low, high = wilson(count, n)
    return {"rate": count / n if n else math.nan, "low": low, "high": high, "count": count, "n": n}


def acceptance(records: Sequence[HumanRecord]) -> dict:
    """Acceptance rate of model A and of model B, each with its interval."""
    n = len(records)
    return {"a": share(sum(r.acceptable_a for r in records), n),
            "b": share(sum(r.acceptable_b for r in records), n)}


def preference(records: Sequence[HumanRecord]) -> dict:
    """Win / tie / loss of A against B (shares with intervals), the five answers' counts, and the win
    rate of A with ties as half (a normal interval)."""
    n = len(records)
    outcomes = [outcome(r.preference) for r in records]
    scores = [1.0 if o < 0 else 0.5 if o == 0 else 0.0 for o in outcomes]
    mean = sum(scores) / n if n else math.nan
    if n > 1:
        sd = math.sqrt(sum((s - mean) ** 2 for s in scores) / (n - 1))
        half = Z95 * sd / math.sqrt(n)
    else:
        half = math.nan
    return {
        "a_wins": share(outcomes.count(-1), n),
        "ties": share(outcomes.count(0), n),
        "b_wins": share(outcomes.count(1), n),
        "answers": {str(v): sum(r.preference == v for r in records) for v in (-2, -1, 0, 1, 2)},
        "win_rate_a": {"rate": mean, "low": max(0.0, mean - half) if n > 1 else math.nan,
                       "high": min(1.0, mean + half) if n > 1 else math.nan, "n": n},
    }


def pair_agreement(x: int, y: int) -> tuple[float, float]:
    """(strict, relaxed) agreement of two outcomes (-1/0/1).

    >>> pair_agreement(-1, -1), pair_agreement(-1, 0), pair_agreement(-1, 1), pair_agreement(0, 0)
    ((1.0, 1.0), (0.0, 0.5), (0.0, 0.0), (1.0, 1.0))
    """
    if x == y:
        return 1.0, 1.0
    if x == 0 or y == 0:
        return 0.0, 0.5
    return 0.0, 0.0


def _by_item(records: Iterable[HumanRecord]) -> dict[str, list[HumanRecord]]:
    items: dict[str, list[HumanRecord]] = defaultdict(list)
    for r in records:
        items[r.item].append(r)
    return items


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else math.nan


def inter_annotator(records: Sequence[HumanRecord]) -> dict:
    """Agreement between annotators on items two or more of them answered (see the module's rules)."""
    strict, relaxed, acc_a, acc_b = [], [], [], []
    pairs = 0
    for rows in _by_item(records).values():
        if len(rows) < 2:
            continue
        two = list(combinations(rows, 2))
        pairs += len(two)
        agree = [pair_agreement(outcome(x.preference), outcome(y.preference)) for x, y in two]
        strict.append(_mean([s for s, _ in agree]))
        relaxed.append(_mean([r for _, r in agree]))
        acc_a.append(_mean([float(x.acceptable_a == y.acceptable_a) for x, y in two]))
        acc_b.append(_mean([float(x.acceptable_b == y.acceptable_b) for x, y in two]))
    a, b = _mean(acc_a), _mean(acc_b)
    return {"between": "annotators", "items": len(strict), "pairs": pairs,
            "strict": _mean(strict), "relaxed": _mean(relaxed),
            "acceptance": (a + b) / 2 if strict else math.nan, "acceptance_a": a, "acceptance_b": b}


def judge_agreement(records: Sequence[HumanRecord], judge: dict[str, int], name: str) -> dict:
    """Agreement of human annotations with a judge's verdicts (item -> -1 A / 0 tie / 1 B), on the items
    both have; also the judge's own A-win/tie/B-win shares on those items, for the same table."""
    strict, relaxed, pairs = [], [], 0
    verdicts = []
    for item, rows in _by_item(records).items():
        if item not in judge:
            continue
        verdicts.append(judge[item])
        agree = [pair_agreement(outcome(r.preference), judge[item]) for r in rows]
        pairs += len(agree)
        strict.append(_mean([s for s, _ in agree]))
        relaxed.append(_mean([r for _, r in agree]))
    n = len(verdicts)
    return {"between": f"annotators and {name}", "judge": name, "items": n, "pairs": pairs,
            "strict": _mean(strict), "relaxed": _mean(relaxed),
            "judge_a_wins": verdicts.count(-1) / n if n else math.nan,
            "judge_ties": verdicts.count(0) / n if n else math.nan,
            "judge_b_wins": verdicts.count(1) / n if n else math.nan}


def study_results(records: Sequence[HumanRecord], judges: dict[str, dict[str, int]] | None = None) -> dict:
    """Everything above for one study: acceptance, preference and the agreement table (annotators first,
    then one row per judge)."""
    table = [inter_annotator(records)]
    for name, verdicts in sorted((judges or {}).items()):
        table.append(judge_agreement(records, verdicts, name))
    return {
        "annotations": len(records),
        "items": len(_by_item(records)),
        "annotators": len({r.annotator for r in records}),
        "acceptance": acceptance(records),
        "preference": preference(records),
        "agreement": table,
    }
