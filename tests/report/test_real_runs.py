"""The report on run folders written by the evaluation engine itself (real tasks, fixture data, a fake
model): each cell is the task's primary metric in percent, and each interval equals the one the task
computed itself with the same seed and resamples (the report regroups the per-item scores itself)."""

from __future__ import annotations

import hashlib

import pytest

import camels.evals.tasks.bbh  # noqa: F401  (registers the tasks and presets)
import camels.evals.tasks.gsm8k  # noqa: F401
import camels.evals.tasks.mmlu  # noqa: F401
import camels.evals.tasks.tydiqa  # noqa: F401
from camels.core.requests import BackendInfo, ChoiceResult, Generation, request_key_material
from camels.evals.cache import RequestCache
from camels.evals.runner import run_task
from camels.evals.task import get_task
from camels.report import build_report


class Fake:
    """A model that answers an item right when a hash of its name and the request falls under ``skill``."""

    def __init__(self, name: str, skill: float, gold: dict[str, object]):
        self.name, self.skill, self.gold = name, skill, gold
        self.info = BackendInfo(name="fake", model=name, fingerprint=name, chat_format={"kind": "plain"})

    def _right(self, req) -> bool:
        h = int(hashlib.sha256((self.name + request_key_material(req)).encode()).hexdigest(), 16)
        return h % 1000 < 1000 * self.skill

    def generate(self, requests):
        return [Generation(texts=(self.gold[request_key_material(r)] if self._right(r) else "I do not know.",),
                           finish_reasons=("stop",)) for r in requests]

    def choose(self, requests):
        out = []
        for r in requests:
            g = self.gold[request_key_material(r)]
            pick = g if self._right(r) else (g + 1) % len(r.choices)
            out.append(ChoiceResult(tuple(0.0 if i == pick else -3.0 for i in range(len(r.choices)))))
        return out


def gold_answer(label: str, item) -> object:
    d = item.data
    return {"bbh_cot": lambda: f"So the answer is {d.get('target')}.", "tydiqa_goldp": lambda: d["answers"][0],
            "gsm8k_cot": lambda: f"The answer is {d.get('gold')}.", "mmlu_0shot": lambda: d.get("answer")}[label]()


SETUPS = [  # (task label, options, data folder under tests/fixtures, metric, ci key)
    ("bbh_cot", {"n": 0}, "bbh", "exact_match", "exact_match_ci95"),
    ("tydiqa_goldp", {"n": 0, "shots": 0}, "tydiqa", "f1", "f1_ci95"),
    ("gsm8k_cot", {"n": 0}, "evals/gsm8k", "exact_match", "exact_match_ci95"),
    ("mmlu_0shot", {}, "evals/mmlu_hendrycks", "accuracy", "accuracy_ci95"),
]


@pytest.mark.slow
def test_report_of_engine_written_runs(tmp_path, fixtures):
    runs = tmp_path / "runs"
    results = {}
    with RequestCache(tmp_path / "cache.sqlite") as cache:
        for model, skill in (("m1", 0.7), ("m2", 0.4)):
            for label, options, data, _, _ in SETUPS:
                task = get_task(label, bootstrap_resamples=400, bootstrap_seed=3, **options)
                gold = {request_key_material(task.requests(it)[0]): gold_answer(label, it)
                        for it in task.load(fixtures / data).items}
                results[model, label] = run_task(task, Fake(model, skill, gold), runs / model / label, model=model,
                                                 cache=cache, data_path=fixtures / data)
                assert 0 < results[model, label].score < 1, (model, label, results[model, label].metrics)
    outs = build_report([runs], tmp_path / "out", baseline="m1", n_boot=400, seed=3)
    table = outs.table
    assert [c.key for c in table.columns] == ["mmlu_0shot", "gsm8k_cot", "bbh_cot", "tydiqa_goldp"]
    for model in ("m1", "m2"):
        row = next(r for r in table.rows if r.label == model)
        for label, _, _, metric, ci_key in SETUPS:
            res, cell = results[model, label], row.cells[label]
            assert cell.value == pytest.approx(100 * res.metrics[metric], abs=1e-9)
            assert cell.ci == pytest.approx(tuple(100 * x for x in res.metrics[ci_key]), abs=1e-9), (model, label)
            assert cell.n == res.counts["scored"]
    tested = {p.column.key: p.result for p in table.paired}
    assert set(tested) == {label for label, *_ in SETUPS}
    for label, *_ in SETUPS:
        a, b = results["m2", label], results["m1", label]
        assert tested[label].difference == pytest.approx(100 * (a.score - b.score), abs=1e-9)
    assert tested["bbh_cot"].n == results["m1", "bbh_cot"].counts["scored"]
    md = outs.markdown.read_text(encoding="utf-8")
    assert "## Paired tests against m1" in md and "## Notes" not in md
