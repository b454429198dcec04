"""Reading a pairwise judge's answer, per prompt version: the preference in the order shown, or None.

* ``ranking`` (alpaca_eval_gpt4): the answer is a Python list of dicts, e.g.
  ``[{'model': 'model_1', 'rank': 2}, {'model': 'model_2', 'rank': 1}]``; the preference is model_1's rank
  (1: the first output is better, 2: the second). As in alpaca_eval, the whole answer must be that literal
  (text around it makes it unparsed), and model_1's rank must be 1 or 2.
* ``identifier`` (one-token verdicts such as AlpacaEval 2's ``m`` / ``M``): the stripped answer must be
  exactly the first or the second identifier.

* ``logprob`` (AlpacaEval 2's weighted judge): not parsed from text; the judge reads the probabilities of
  the two identifiers as the first answer token, preference ``1 + P(second) / (P(first) + P(second))``
  (:func:`preference_from_logprobs`).

Anything else is None: the judge is asked again (a bounded number of times), then the verdict stays
unparsed and is counted as such, never as a win or a loss.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Mapping


def parse_ranking(text: str) -> float | None:
    """>>> parse_ranking("[{'model': 'model_1', 'rank': 2}, {'model': 'model_2', 'rank': 1}]")
    2.0
    >>> parse_ranking("model_2 is better") is None
    True
    """
    try:
        ranking = ast.literal_eval(text.strip())
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return None
    if not isinstance(ranking, (list, tuple)):
        return None
    ranks = [d.get("rank") for d in ranking if isinstance(d, dict) and d.get("model") == "model_1"]
    if not ranks or isinstance(ranks[0], bool) or ranks[0] not in (1, 2):
        return None
    return float(ranks[0])


def parse_identifier(text: str, first: str, second: str) -> float | None:
    """>>> parse_identifier(" M\\n", "m", "M")
    2.0
    """
    t = text.strip()
    if t == first:
        return 1.0
    if t == second:
        return 2.0
    return None


def preference_from_logprobs(first: float, second: float) -> float | None:
    """``1 + P(second) / (P(first) + P(second))`` from the two log-probabilities (None when neither is finite).

    >>> round(preference_from_logprobs(math.log(0.2), math.log(0.6)), 6)
    1.75
    """
    top = max(first, second)
    if not math.isfinite(top):
        return None
    a, b = math.exp(first - top), math.exp(second - top)
    return 1.0 + b / (a + b)


def parse_verdict(parser: str, text: str, options: Mapping[str, str] | None = None) -> float | None:
    """The preference read from ``text`` by the named parser (None when it cannot be read)."""
    if parser == "ranking":
        return parse_ranking(text)
    if parser == "identifier":
        opts = options or {}
        return parse_identifier(text, opts["first"], opts["second"])
    raise ValueError(f"unknown verdict parser {parser!r}")
