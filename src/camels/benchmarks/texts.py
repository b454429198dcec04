"""The text of every benchmark item, for decontamination: ``(file, item id, [segments])``.

One segment per field that a model sees at evaluation time; n-grams never span two segments. The items
and ids are those of the benchmark's reader (the ids evaluation uses), so a contaminated item is named
the same way in a decontamination report and in ``predictions.jsonl``. A path is a file or a folder
searched below (patterns per benchmark).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from camels.benchmarks import bbh, gsm8k, mmlu, toxigen, truthfulqa, tydiqa
from camels.core.errors import ConfigError, RecordError
from camels.core.io import iter_jsonl, read_json

Item = tuple[Path, str, list[str]]  # (file, item id, text segments)
_GSM_CALC = re.compile(r"<<[^>]*>>")


def _files(path: Path, patterns: Sequence[str]) -> list[Path]:
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise ConfigError(f"benchmark path {path} does not exist")
    found: set[Path] = set()
    for pat in patterns:
        found.update(p for p in path.rglob(pat) if p.is_file())
    return sorted(found)


def _field(obj: Any, key: str, f: Path, n: int) -> str:
    if not isinstance(obj, Mapping) or not isinstance(obj.get(key), str):
        raise RecordError("missing_field", "required text field is missing", field=key, file=str(f), line=n)
    return obj[key]


def mmlu_texts(path: Path) -> Iterator[Item]:
    """Test, dev and val rows; segments: the question and each choice."""
    for split in mmlu.SPLITS:
        for subject, f in sorted(mmlu.find_files(path, split).items()):
            for i, row in enumerate(mmlu.read_csv(f)):
                yield f, mmlu.item_id(subject, split, i), [row["question"], *row["choices"]]


def gsm8k_texts(path: Path) -> Iterator[Item]:
    """``test*.jsonl`` files (the train split is training data, not an eval set); segments: the question
    and the solution without its calculator annotations ``<<...>>``."""
    for f in _files(path, ("test*.jsonl",)):
        for item_id, n, obj in gsm8k.read_records(f):
            yield f, item_id, [_field(obj, "question", f, n), _GSM_CALC.sub("", str(obj.get("answer", "")))]


def bbh_texts(path: Path) -> Iterator[Item]:
    """Subtask files; segment: the input. JSON files of another shape (not subtasks) are passed over."""
    for f in _files(path, ("*.json",)):
        try:
            examples = bbh.read_examples(f)
        except RecordError as e:
            if e.reason == "bad_file":
                continue
            raise
        for i, ex in enumerate(examples):
            yield f, bbh.item_id(f.stem, i), [str(ex.get("input", "") if isinstance(ex, Mapping) else "")]


def truthfulqa_texts(path: Path) -> Iterator[Item]:
    """``mc_task.json`` when there is one (segments: the question and its one true MC1 answer), else
    ``TruthfulQA.csv`` (the question and the best answer)."""
    mc = _files(path, (truthfulqa.MC_FILE,))
    if mc:
        for f in mc:
            prefix = truthfulqa.mc_prefix(f)
            for i, row in enumerate(truthfulqa.read_mc(f)):
                row = row if isinstance(row, Mapping) else {}
                targets = row.get("mc1_targets")
                best = [a for a, lab in targets.items() if lab == 1] if isinstance(targets, Mapping) else []
                yield f, f"{prefix}:{i}", [str(row.get("question") or ""), *map(str, best[:1])]
        return
    for f in _files(path, ("TruthfulQA*.csv", "truthfulqa*.csv")):
        for i, row in enumerate(truthfulqa.read_csv_rows(f)):
            yield f, f"{f.stem}:{i}", [row.get("Question") or "", row.get("Best Answer") or ""]


def humaneval_texts(path: Path) -> Iterator[Item]:
    """HumanEval JSONL(.gz) problems; segment: the prompt (signature and docstring)."""
    for f in _files(path, ("HumanEval*.jsonl*", "*humaneval*.jsonl*")):
        for n, obj in iter_jsonl(f):
            yield f, str(obj.get("task_id", f"{f.stem}:{n}")), [_field(obj, "prompt", f, n)]


def alpaca_eval_texts(path: Path) -> Iterator[Item]:
    """AlpacaEval JSON lists of ``{"instruction", ...}`` (the eval set or any model_outputs.json)."""
    for f in _files(path, ("*.json",)):
        data = read_json(f)
        if not isinstance(data, list):
            continue
        for i, obj in enumerate(data):
            if isinstance(obj, Mapping) and isinstance(obj.get("instruction"), str):
                yield f, f"alpaca_eval:{i}", [obj["instruction"]]


def tydiqa_texts(path: Path) -> Iterator[Item]:
    """GoldP SQuAD-format JSON (segment: the question) or primary-task JSONL(.gz) (``question_text``).
    Passages are Wikipedia text and are not indexed (training on Wikipedia is not contamination)."""
    for f in _files(path, ("*.jsonl", "*.jsonl.gz", "*.json")):
        if f.name.endswith((".jsonl", ".jsonl.gz")):
            for n, obj in iter_jsonl(f):
                yield f, str(obj.get("example_id", f"{f.stem}:{n}")), [_field(obj, "question_text", f, n)]
            continue
        data = read_json(f)
        if not (isinstance(data, Mapping) and "data" in data):
            continue
        for row in tydiqa.squad_rows(data, str(f)):
            yield f, row["id"], [row["question"]]


def toxigen_texts(path: Path) -> Iterator[Item]:
    """ToxiGen prompt files (one prompt per line, statements separated by a literal ``\\n-``); each
    statement is a segment."""
    for f in _files(path, ("hate_*.txt", "neutral_*.txt")):
        rows, _ = toxigen.read_prompts(f)
        for line, text in rows:
            parts = [p.strip(" -") for p in toxigen.clean_prompt(text).split("\n")]
            yield f, toxigen.item_id(f, line), [p for p in parts if p]


READERS = {
    "mmlu": mmlu_texts,
    "gsm8k": gsm8k_texts,
    "bbh": bbh_texts,
    "truthfulqa": truthfulqa_texts,
    "humaneval": humaneval_texts,
    "alpaca_eval": alpaca_eval_texts,
    "tydiqa": tydiqa_texts,
    "toxigen": toxigen_texts,
}
# Sub-folder names looked for when a whole data folder is given (the layout of the real-data folder).
FOLDERS = {
    "mmlu": ("mmlu",),
    "gsm8k": ("gsm8k", "gsm"),
    "bbh": ("bbh",),
    "truthfulqa": ("truthfulqa",),
    "humaneval": ("humaneval", "codex_humaneval"),
    "alpaca_eval": ("alpaca_eval", "alpaca_farm"),
    "tydiqa": ("tydiqa", "tydiqa_primary_tiny", "tydiqa_goldp"),
    "toxigen": ("toxigen",),
}
