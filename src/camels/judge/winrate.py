"""Win rate of pairwise preferences, as AlpacaEval defines it.

A preference is alpaca_eval's encoding of one verdict between a reference output (``output_1``) and a
model output (``output_2``): ``1`` the reference wins, ``2`` the model wins, ``1.5`` (or the legacy ``0``)
a tie, a number in between a probability-weighted verdict (``1 + P(model wins)``), and ``None`` (or NaN)
a verdict that could not be parsed. With ``v = preference - 1`` in [0, 1] per parsed verdict:

* ``win_rate`` = 100 * mean(v): ties count as half a win;
* ``standard_error`` = 100 * sample standard deviation of v (n - 1 in the denominator) / sqrt(n);
* ``n_wins`` / ``n_losses`` / ``n_ties``: verdicts with v above, below, exactly at 0.5;
* ``discrete_win_rate``: the same with every weighted verdict rounded to a win, loss or tie first;
* ``n_unparsed``: verdicts that could not be parsed; they are counted here and left out of every
  rate (neither a win nor a loss), as alpaca_eval leaves them out.

These are the definitions of ``alpaca_eval.metrics.get_winrate`` (alpaca-eval 0.6.6); the comparison script
``benchmarks/alpaca_eval_metrics.py`` runs both on the same annotations file.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

TIE = 1.5


def is_tie(p: float) -> bool:
    return p == TIE or p == 0


def check_preference(value: Any) -> float | None:
    """A preference as a float in [1, 2] (a legacy tie ``0`` becomes 1.5), or None for an unparsed verdict.

    Raises ValueError for anything else (a string, a number outside [1, 2] other than 0).
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"preference must be a number in [1, 2] (or 0 / null), got {value!r}")
    p = float(value)
    if math.isnan(p):
        return None
    if p == 0:
        return TIE
    if not 1.0 <= p <= 2.0:
        raise ValueError(f"preference must be in [1, 2] (or 0 / null), got {value!r}")
    return p


def win_rate_metrics(preferences: Sequence[float | None]) -> dict[str, Any]:
    """Win rate, standard error and counts of preferences (see the module doc); ``None`` = unparsed.

    >>> m = win_rate_metrics([2, 2, 1, 1.5, None])
    >>> m["win_rate"], m["n_wins"], m["n_losses"], m["n_ties"], m["n_unparsed"]
    (62.5, 2, 1, 1, 1)
    """
    parsed = [p for p in (check_preference(x) for x in preferences) if p is not None]
    n = len(parsed)
    values = [p - 1.0 for p in parsed]
    discrete = [0.5 if p == TIE else (1.0 if p > TIE else 0.0) for p in parsed]
    out: dict[str, Any] = {
        "win_rate": _mean(values) * 100 if n else None,
        "standard_error": _sem(values) * 100 if n > 1 else None,
        "discrete_win_rate": _mean(discrete) * 100 if n else None,
        "n_wins": sum(v > 0.5 for v in values),
        "n_losses": sum(v < 0.5 for v in values),
        "n_ties": sum(v == 0.5 for v in values),
        "n_unparsed": len(preferences) - n,
        "n_total": n,
    }
    return out


def _mean(values: Sequence[float]) -> float:
    return math.fsum(values) / len(values)


def _sem(values: Sequence[float]) -> float:
    m = _mean(values)
    var = math.fsum((v - m) ** 2 for v in values) / (len(values) - 1)
    return math.sqrt(var / len(values))
