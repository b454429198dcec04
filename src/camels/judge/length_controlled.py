"""AlpacaEval 2's length-controlled win rate (Dubois et al. 2024), as alpaca_eval 0.6.6 computes it.

The judged model's preferences are explained by a logistic regression (no intercept) on three features:
``tanh(length difference / its standard deviation)`` (reference minus model, in characters), the
instruction's difficulty, and a model term (1 for the judged model); the length-controlled win rate is the
mean predicted preference with the length difference set to zero, in percent, with its standard error.
alpaca_eval fits this with its per-instruction data ``df_gamed.csv`` (tatsu-lab/alpaca_eval on the hub):
the difficulty of each of the 805 instructions, and annotations of two "gamed" models (verbose and
concise variants) that enter the fit with weight 0.1 each to regularise the model term ("length_controlled_v1":
L1-penalised logistic regression, liblinear, fractional targets by duplicating each row with targets 1 and
0 weighted by p and 1 - p, C chosen from 10 values by 5-fold cross-validation grouped by row, scored by the
weighted log loss).

:func:`length_controlled_win_rate` does the same with scikit-learn (``pip install 'camels-instruct[judge]'``)
given that file (a path, or ``hub`` to fetch it with ``huggingface_hub``); without it, or without
scikit-learn, it says why in a note instead of a number. ``benchmarks/alpaca_eval_metrics.py`` compares it
with alpaca_eval's own function on the same inputs.
"""

from __future__ import annotations

import csv
import math
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from camels.core.io import sha256_file

GAMED_WEIGHT = 0.2 / 2  # alpaca_eval: regularize_to_baseline_lambda / the two gamed baselines
HUB_REPO = "tatsu-lab/alpaca_eval"
HUB_FILE = "df_gamed.csv"


class GamedData:
    """The rows of ``df_gamed.csv`` that the fit uses, and each instruction's difficulty (by ``index``)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.rows: list[tuple[float, float, float, float]] = []  # preference, std_delta_len, difficulty, not_gamed
        self.difficulty: dict[int, float] = {}
        with open(self.path, encoding="utf-8", newline="") as f:
            for n, row in enumerate(csv.DictReader(f), start=2):
                try:
                    index = int(float(row["index"]))
                    diff = float(row["instruction_difficulty"])
                    pref = float(row["preference"]) if row["preference"] not in ("", "nan", "NaN") else math.nan
                    delta = float(row["std_delta_len"])
                    flag = str(row["not_gamed_baseline"]).strip().lower() == "true"
                except (KeyError, TypeError, ValueError) as e:
                    raise ValueError(f"{self.path}:{n}: bad df_gamed row ({type(e).__name__}: {e})") from None
                self.difficulty.setdefault(index, diff)
                self.rows.append((pref, delta, diff, float(flag)))


def load_gamed(source: str) -> GamedData:
    """``df_gamed.csv`` from a path, or from the hub when ``source`` is ``hub`` (needs network)."""
    if source == "hub":
        from huggingface_hub import hf_hub_download

        return GamedData(hf_hub_download(repo_id=HUB_REPO, filename=HUB_FILE, repo_type="dataset"))
    return GamedData(source)


def _features(delta: Sequence[float], difficulty: Sequence[float], not_gamed: Sequence[float]) -> Any:
    import numpy as np

    return np.column_stack([np.tanh(np.asarray(delta, dtype=float)), np.asarray(difficulty, dtype=float),
                            np.asarray(not_gamed, dtype=float)])


def _weighted_log_loss(y_true: Any, y_pred: Any, true_prob: Any, true_sample_weight: Any = None) -> float:
    """Log loss with fractional targets: a duplicated row's target is p (label 1) or 1 - p (label 0)."""
    import numpy as np

    t = np.where(y_true == 1, true_prob, 1 - true_prob)
    p = np.clip(y_pred, 1e-15, 1 - 1e-15)
    loss = t * np.log(p) + (1 - t) * np.log(1 - p)
    if true_sample_weight is not None:
        loss = loss * true_sample_weight
    return float(-np.mean(loss))


def fit_length_controlled(preferences: Sequence[float | None], reference_chars: Sequence[int],
                          model_chars: Sequence[int], indices: Sequence[int], gamed: GamedData) -> dict[str, float]:
    """The length-controlled win rate and its standard error (see the module doc).

    ``preferences`` are alpaca_eval preferences (1..2, 0 = tie, None unparsed) of the model (output_2)
    against the reference (output_1); ``indices`` are the instructions' positions in the eval set.
    """
    import numpy as np
    import sklearn
    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.metrics import make_scorer
    from sklearn.model_selection import GroupKFold

    missing = sorted({i for i in indices if i not in gamed.difficulty})
    if missing:
        raise ValueError(f"{gamed.path} has no difficulty for instructions {missing[:5]}")
    pref = np.array([math.nan if p is None else (1.5 if p == 0 else float(p)) for p in preferences]) - 1
    delta = np.asarray(reference_chars, dtype=float) - np.asarray(model_chars, dtype=float)
    std_delta = delta / np.std(delta, ddof=1)
    diff = [gamed.difficulty[i] for i in indices]
    g = np.array(gamed.rows, dtype=float).reshape(-1, 4)
    x_train = np.vstack([_features(g[:, 1], g[:, 2], g[:, 3]), _features(std_delta, diff, np.ones(len(pref)))])
    y_prob = np.concatenate([g[:, 0], pref])
    weight = np.concatenate([g[:, 3] + GAMED_WEIGHT * (1 - g[:, 3]), np.ones(len(pref))])
    keep = ~np.isnan(y_prob)
    x_train, y_prob, weight = x_train[keep], y_prob[keep], weight[keep]
    n = len(y_prob)
    x_dup = np.vstack([x_train, x_train])
    y_dup = np.concatenate([np.ones(n, dtype=int), np.zeros(n, dtype=int)])
    true_prob = np.concatenate([y_prob, 1 - y_prob])
    true_weight = np.concatenate([weight, weight])
    groups = np.concatenate([np.arange(n), np.arange(n)])
    with sklearn.config_context(enable_metadata_routing=True), warnings.catch_warnings():
        # alpaca_eval's settings (penalty="l1") are deprecated in scikit-learn 1.8 (removed in 1.10): same fit
        warnings.simplefilter("ignore", FutureWarning)
        scorer = make_scorer(_weighted_log_loss, response_method="predict_proba", greater_is_better=False)
        scorer = scorer.set_score_request(true_sample_weight=True, true_prob=True)
        model = LogisticRegressionCV(cv=GroupKFold(n_splits=5), scoring=scorer, random_state=123, dual=False,
                                     penalty="l1", solver="liblinear", n_jobs=None, fit_intercept=False)
        model.set_fit_request(sample_weight=True)
        model.fit(x_dup, y_dup, sample_weight=true_prob * true_weight, groups=groups,
                  true_sample_weight=true_weight, true_prob=true_prob)
    x_test = _features(np.zeros(len(pref)), diff, np.ones(len(pref)))
    predicted = model.predict_proba(x_test)[:, 1]
    sem = float(np.std(predicted, ddof=1) / math.sqrt(len(predicted))) if len(predicted) > 1 else math.nan
    return {"length_controlled_win_rate": float(predicted.mean()) * 100, "lc_standard_error": sem * 100,
            "lc_weights": {"tanh_std_delta_len": float(model.coef_[0][0]),
                           "instruction_difficulty": float(model.coef_[0][1]),
                           "not_gamed_baseline": float(model.coef_[0][2])}}


def length_controlled_win_rate(preferences: Sequence[float | None], reference_chars: Sequence[int],
                               model_chars: Sequence[int], indices: Sequence[int], source: str) -> dict[str, Any]:
    """:func:`fit_length_controlled` when ``source`` (a df_gamed.csv path, or ``hub``) and scikit-learn are
    available; else ``length_controlled_win_rate: None`` and a note saying what is missing."""
    if not source:
        return {"length_controlled_win_rate": None, "length_controlled_note": (
            "not computed: alpaca_eval's length-controlled win rate is fitted with its per-instruction data "
            "(df_gamed.csv of the tatsu-lab/alpaca_eval hub dataset); give it with lc_data=PATH (or lc_data=hub)")}
    try:
        gamed = load_gamed(source)
        out: dict[str, Any] = fit_length_controlled(preferences, reference_chars, model_chars, indices, gamed)
    except ImportError as e:
        return {"length_controlled_win_rate": None,
                "length_controlled_note": f"not computed: needs {e.name or e} (pip install 'camels-instruct[judge]')"}
    except (OSError, ValueError) as e:
        return {"length_controlled_win_rate": None, "length_controlled_note": f"not computed: {e}"}
    out["length_controlled_note"] = (f"length_controlled_v1 fitted with {gamed.path.name} "
                                     f"(sha256 {sha256_file(gamed.path)[:12]})")
    return out
