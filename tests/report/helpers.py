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


REF_YAML = "scale: percent\nmodels:\n  ref:\n    label: Ref\n    scores: {mmlu_0shot: 50, bbh_cot: 60, toxigen: 20}\n"


def two_models(root):
    """alpha and beta, with per-item scores chosen so that every figure can be worked out by hand."""
    a, b = root / "runs" / "alpha", root / "runs" / "beta"
    mmlu(a, [1, 1, 0, 1])                      # 75.0
    mmlu(b, [1, 0, 0, 0])                      # 25.0
    bbh(a, {"a": [1, 0], "b": [1]})            # macro (50 + 100) / 2 = 75.0 (micro would be 66.7)
    bbh(b, {"a": [0, 0], "b": [1]})            # macro (0 + 100) / 2 = 50.0
    toxigen(a, [0, 0, 1, 0])                   # 25.0 toxic
    toxigen(b, [1, 1, 0, 0])                   # 50.0 toxic
    alpaca(a, [2, 1.5, 1, 2])                  # 100 * (1 + .5 + 0 + 1) / 4 = 62.5; beta has no run
    write_run(b, "mytask", "mytask", {}, "score", {"score": 3.5},   # an unknown task: "Other", as written
              [("m0", {}, {"score": 3.0}), ("m1", {}, {"score": 4.0})])
    (root / "ref.yaml").write_text(REF_YAML, encoding="utf-8")
    return root / "runs"


def sample_study(root: Path, seed: int = 0) -> dict[str, Any]:
    """Three models' run folders over every study column, with seeded synthetic per-item scores (for the
    HTML page and its screenshot), a training loss file per model and an annotate export."""
    import json
    import random

    from camels.report.stats import pass_at_k

    rng = random.Random(seed)
    runs = root / "runs"
    skill = {"base-7b": 0.35, "tulu-mix-7b": 0.55, "sharegpt-7b": 0.5}

    def bern(p: float, n: int) -> list[int]:
        return [int(rng.random() < p) for _ in range(n)]

    training = {}
    for name, p in skill.items():
        d = runs / name
        mmlu(d, bern(p + 0.05, 60), shots=0)
        mmlu(d, bern(p + 0.08, 60), shots=5)
        for cot, extra in ((False, -0.25), (True, -0.05)):
            em = bern(max(0.02, p + extra), 40)
            write_run(d, "gsm8k_cot" if cot else "gsm8k_direct", "gsm8k", {"cot": cot}, "exact_match",
                      {"exact_match": sum(em) / len(em)},
                      [(f"test:{i}", {}, {"exact_match": float(c)}) for i, c in enumerate(em)])
            bbh(d, {t: bern(p + extra / 2, 10) for t in ("boolean_expressions", "date_understanding", "navigate")},
                cot=cot)
        for closed, extra in ((False, 0.1), (True, -0.3)):
            items = [(f"{lang}-{i}", {"language": lang}, {"f1": round(min(1.0, max(0.0, rng.gauss(p + extra, 0.3))), 3),
                                                          "language": lang})
                     for lang in ("ar", "en", "fi", "sw") for i in range(12)]
            by: dict[str, list[float]] = {}
            for _, it, s in items:
                by.setdefault(it["language"], []).append(s["f1"])
            write_run(d, "tydiqa_closed_book" if closed else "tydiqa_goldp", "tydiqa", {"closed_book": closed}, "f1",
                      {"f1": sum(sum(v) / len(v) for v in by.values()) / len(by)}, items)
        for k in (1, 10):
            probs = []
            for i in range(30):
                c = sum(bern(p * 0.5 * rng.random() ** 2, 20))
                probs.append((f"HumanEval/{i}", {}, {"n": 20, "correct": c, f"pass@{k}": pass_at_k(20, c, k)}))
            write_run(d, f"codex_eval_pass{k}", "humaneval", {"primary_k": k, "samples": 20}, f"pass@{k}",
                      {f"pass@{k}": sum(s[f"pass@{k}"] for _, _, s in probs) / len(probs)}, probs)
        toxigen(d, bern(0.5 - p * 0.6, 60))
        mc2 = [round(rng.random() * (0.4 + p * 0.4), 4) for _ in range(50)]
        write_run(d, "truthfulqa_mc", "truthfulqa", {"mode": "mc"}, "mc2", {"mc2": sum(mc2) / len(mc2)},
                  [(f"tqa:{i}", {}, {"mc1": 0.0, "mc2": v}) for i, v in enumerate(mc2)])
        if name != "base-7b":
            alpaca(d, [rng.choice([1, 1.5, 2, 2, 1]) if rng.random() < p else 1 for _ in range(50)])
        train = root / "train" / name
        train.mkdir(parents=True, exist_ok=True)
        loss, lines = 2.4 + rng.random() * 0.3, []
        for step in range(1, 41):
            loss = loss * (0.965 + 0.01 * rng.random())
            lines.append(json.dumps({"step": step, "epoch": step // 20, "loss": round(loss, 4), "lr": 2e-5}) + "\n")
        (train / "metrics.jsonl").write_text("".join(lines), encoding="utf-8")
        training[name] = train
    results = {"schema": 1, "kind": "camels.human_pairwise", "studies": [
        {"study": "mix-vs-sharegpt", "model_a": "tulu-mix-7b", "model_b": "sharegpt-7b", "acceptance": {
            "a": {"count": 31, "n": 50}, "b": {"count": 27, "n": 50}}}]}
    (root / "results.json").write_text(json.dumps(results), encoding="utf-8")
    return {"runs": runs, "training": training, "human": root / "results.json"}
