"""LLM-as-judge and classifier scoring: pinned judge identities, versioned prompts, lossless annotations.

Layer: on :mod:`camels.core` and :mod:`camels.backends`; :mod:`camels.evals` tasks use it for scoring.

* :mod:`camels.judge.identity` -- the judge identity recorded in every annotation; never mixed.
* :mod:`camels.judge.winrate` -- AlpacaEval's win rate and standard error.
* :mod:`camels.judge.annotations` -- alpaca_eval's ``model_outputs.json`` / ``annotations.json`` formats.
"""
