"""Judge answers made elsewhere: a model's AlpacaEval outputs against a reference's (``camels judge run``).

:func:`judge_outputs` reads the model's answers (an alpaca_eval ``model_outputs.json``, matched to the
reference's instructions by text, or a camels run folder of the ``alpaca_eval`` task, matched by item id),
has the ``alpaca_eval`` task's scoring phase judge them through the request cache in the output folder
(:func:`camels.evals.runner.score_outputs`), and writes there:

* ``predictions.jsonl``, ``metrics.json``, ``coverage.json``, ``config.resolved.json`` (a rescorable folder);
* ``model_outputs.json`` and ``annotations.json`` in alpaca_eval's formats;
* ``judge_ledger.jsonl`` (one line per judge call, over every run into this folder) and
  ``judge_ledger.json`` (its totals).

A folder whose ``annotations.json`` was written by another judge (model, revision, prompt version or
decoding) is refused before anything is judged: judge into a new folder instead.
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from camels.core.errors import ConfigError, RecordError
from camels.core.io import read_json, write_json
from camels.core.results import MANIFEST_FILE, PREDICTIONS_FILE, read_predictions
from camels.evals.runner import CACHE_FILE, open_cache, score_outputs, task_from_run
from camels.evals.task import get_task
from camels.evals.tasks.alpaca_eval import AlpacaEval, alpaca_eval_files
from camels.judge.annotations import annotation_identity, read_annotations, summarize, write_annotations
from camels.judge.identity import MixedJudgeError, require_one_identity

LEDGER_FILE = "judge_ledger.jsonl"


@dataclass(slots=True)
class JudgeReport:
    metrics: dict[str, Any]
    judge: str
    ledger: dict[str, Any]
    output: Path
    computed: int
    cached: int


def _answers(outputs: Path, task: AlpacaEval, data: str | None) -> tuple[dict[str, str], str]:
    """Item id -> the model's answer, and the model's name."""
    if outputs.is_dir():
        preds = read_predictions(outputs / PREDICTIONS_FILE)
        name = outputs.parent.name
        if (outputs / MANIFEST_FILE).is_file():
            name = Path(str(read_json(outputs / MANIFEST_FILE).get("model") or name)).name or name
        return {p.id: p.output or "" for p in preds}, name
    rows = read_json(outputs)
    if not isinstance(rows, list):
        raise RecordError("bad_file", "expected a JSON list of {instruction, output}", file=str(outputs))
    items = task.load(task.resolve_data_path(data)).items
    by_text: dict[str, str] = {}
    for it in items:
        by_text.setdefault(it.data["instruction"], it.id)
    answers: dict[str, str] = {}
    names = set()
    for i, row in enumerate(rows):
        if not isinstance(row, dict) or not isinstance(row.get("instruction"), str) \
                or not isinstance(row.get("output"), str):
            raise RecordError("bad_record", f"record {i}: needs string instruction and output", file=str(outputs))
        item_id = by_text.get(row["instruction"])
        if item_id is None:
            raise RecordError("unknown_instruction", f"record {i}: instruction is not one of the reference's "
                              f"({row['instruction'][:60]!r})", field="instruction", file=str(outputs))
        if item_id in answers:
            raise RecordError("duplicate_id", f"record {i}: instruction answered twice", field="instruction",
                              file=str(outputs))
        answers[item_id] = row["output"]
        names.add(str(row.get("generator", "")))
    name = names.pop() if len(names) == 1 else ""
    return answers, name or outputs.stem


def _refuse_other_judge(out: Path, identity: Any) -> None:
    ann = out / "annotations.json"
    if not ann.is_file():
        return
    before = require_one_identity([annotation_identity(r) for r in read_annotations(ann)], str(ann))
    if before != identity:
        raise MixedJudgeError(
            f"{out} holds annotations by another judge: [{before.describe()}]; this run's judge is "
            f"[{identity.describe()}]. Refusing to mix them: judge into another --output folder")


def judge_outputs(
    outputs: str | Path,
    *,
    reference: str | None = None,
    data: str | None = None,
    output: str | Path | None = None,
    generator: str | None = None,
    judge_prompt: str = "alpaca_eval_gpt4",
    judge_model: str = "",
    judge_backend: str = "",
    base_url: str = "",
    judge_options: Mapping[str, str] | None = None,
    max_attempts: int = 3,
    max_cost: float | None = None,
    both_orders: bool = False,
    seed: int = 0,
    chunk_size: int = 8,
    cache: str | Path | None = None,
    scorer: Any = None,
    lc_data: str = "",
) -> JudgeReport:
    """Judge ``outputs`` against the reference and write the output folder (see the module doc).

    ``scorer`` replaces the judge built from the ``judge_*`` arguments (tests pass their own).
    """
    outputs = Path(outputs)
    if not outputs.exists():
        raise ConfigError(f"{outputs} does not exist")
    options: dict[str, Any] = {}
    if outputs.is_dir():
        run_task = task_from_run(outputs)
        if run_task.name != "alpaca_eval":
            raise ConfigError(f"{outputs} is a run of {run_task.name}, not alpaca_eval")
        options["reference"] = run_task.config.reference
    if reference:
        options["reference"] = reference
    out = Path(output) if output else (outputs if outputs.is_dir() else outputs.parent) / Path(judge_prompt).stem
    if out.resolve() == outputs.resolve():
        out = out / Path(judge_prompt).stem
    task: AlpacaEval = get_task("alpaca_eval", **options, seed=seed, both_orders=both_orders,
                                judge_prompt=judge_prompt, judge_model=judge_model, judge_backend=judge_backend,
                                judge_base_url=base_url, judge_options=dict(judge_options or {}),
                                judge_max_attempts=max_attempts, judge_ledger=str(out / LEDGER_FILE),
                                judge_max_cost=max_cost, lc_data=lc_data)  # type: ignore[assignment]
    answers, name = _answers(outputs, task, data)
    generator = generator or name
    task.config = dataclasses.replace(task.config, generator=generator)  # kept in config.resolved.json
    if scorer is None:
        from camels.evals.tasks.alpaca_eval import _pair_scorer

        scorer = _pair_scorer(task)
    _refuse_other_judge(out, scorer.identity)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="camels-judge-") as tmp:
        lines = Path(tmp) / "outputs.jsonl"
        lines.write_text("".join(json.dumps({"id": k, "output": v}) + "\n" for k, v in answers.items()),
                         encoding="utf-8")
        with open_cache(out, cache or out / CACHE_FILE) as c:
            before = len(c)
            report = score_outputs(task, lines, data_path=data, output_dir=out, cache=c,
                                   scorers={"judge_pair": scorer}, chunk_size=chunk_size)
            computed = len(c) - before
    model_rows, ann_rows = alpaca_eval_files(task, report.predictions, generator)
    write_json(out / "model_outputs.json", model_rows)
    write_annotations(out / "annotations.json", ann_rows)
    totals = scorer.ledger.totals()
    write_json(out / "judge_ledger.json", totals)
    metrics = summarize(ann_rows, where=str(out / "annotations.json"))
    # the task's metrics add self-consistency, costs and the length-controlled fit (by item index)
    metrics.update({k: v for k, v in report.result.metrics.items()
                    if k not in metrics or k.startswith(("length_controlled", "lc_"))})
    asked = sum(len(p.scoring_requests) for p in report.predictions)
    return JudgeReport(metrics=metrics, judge=scorer.identity.describe(), ledger=totals, output=out,
                       computed=computed, cached=asked - computed)
