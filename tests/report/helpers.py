"""Run folders with known predictions, written with camels.core.results' own classes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from camels.core.requests import GenerateRequest, Generation
from camels.core.results import (
    MANIFEST_FILE,
    METRICS_FILE,
    PREDICTIONS_FILE,
    Prediction,
    RunManifest,
    TaskResult,
    write_predictions,
)


def write_run(model_dir: Path, label: str, task: str, config: dict[str, Any], primary: str, metrics: dict[str, Any],
              items: list[tuple[str, dict[str, Any], dict[str, Any]]]) -> Path:
    """A run folder ``model_dir/label`` with one prediction per ``(id, item fields, scores)``."""
    run = model_dir / label
    run.mkdir(parents=True, exist_ok=True)
    preds = [Prediction(id=i, task=label, item=item,
                        requests=[GenerateRequest(messages=(("user", f"question {i}"),))],
                        results=[Generation(texts=(f"answer {i}",), finish_reasons=("stop",))],
                        output=f"answer {i}", scores=scores) for i, item, scores in items]
    write_predictions(run / PREDICTIONS_FILE, preds)
    TaskResult(task=label, task_version="1", primary_metric=primary, metrics=metrics,
               counts={"items": len(items), "scored": len(items)}).write(run / METRICS_FILE)
    RunManifest(model=model_dir.name, backend={"name": "test"},
                task={"name": label, "task": task, "version": "1", "config": config}).write(run / MANIFEST_FILE)
    return run


def mmlu(model_dir: Path, correct: list[int], shots: int = 0) -> Path:
    return write_run(model_dir, f"mmlu_{shots}shot", "mmlu", {"shots": shots}, "accuracy",
                     {"accuracy": sum(correct) / len(correct), "n": len(correct)},
                     [(f"q{i}", {"subject": "anatomy"}, {"correct": float(c)}) for i, c in enumerate(correct)])


def bbh(model_dir: Path, per_task: dict[str, list[int]], cot: bool = True) -> Path:
    items = [(f"{t}:{i}", {"task": t}, {"exact_match": float(c)}) for t, cs in per_task.items()
             for i, c in enumerate(cs)]
    macro = sum(sum(cs) / len(cs) for cs in per_task.values()) / len(per_task)
    return write_run(model_dir, "bbh_cot" if cot else "bbh_direct", "bbh", {"cot": cot}, "exact_match",
                     {"exact_match": macro, "n": len(items)}, items)


def toxigen(model_dir: Path, toxic: list[int]) -> Path:
    return write_run(model_dir, "toxigen", "toxigen", {"n": 500}, "toxic",
                     {"toxic": sum(toxic) / len(toxic), "n": len(toxic)},
                     [(f"t{i}", {"group": "g"}, {"toxic": float(t), "group": "g"}) for i, t in enumerate(toxic)])


def alpaca(model_dir: Path, prefs: list[float | None]) -> Path:
    parsed = [p - 1 for p in prefs if p is not None]
    return write_run(model_dir, "alpaca_eval", "alpaca_eval", {"reference": "text_davinci_003"}, "win_rate",
                     {"win_rate": 100 * sum(parsed) / len(parsed), "n_unparsed": len(prefs) - len(parsed)},
                     [(f"alpaca_eval:{i}", {"instruction": "x"}, {"preference": p}) for i, p in enumerate(prefs)])
