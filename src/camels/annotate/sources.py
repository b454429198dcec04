"""Reading what the annotation app compares: two systems' outputs, and an LLM judge's verdicts.

Accepted inputs (each checked record by record; a bad one raises :class:`RecordError` naming file, line
or index, and field):

========================================  ========================================================  ======================
input                                     one record                                                pairing key
========================================  ========================================================  ======================
camels run folder (or its                 ``{"id", "item": {...}, "output", ...}`` per line; the    ``id``
``predictions.jsonl``)                    prompt is the item's ``instruction`` (+ ``"\\n\\n" +
                                          input``), else ``prompt``, else ``question``
alpaca_eval ``model_outputs.json``        ``{"instruction", "output", "generator", ...}`` in a list  ``instruction``
alpaca_eval ``annotations.json`` (judge)  ``{"instruction", "output_1", "output_2", "generator_1",   instruction + models
                                          "generator_2", "preference"}``
========================================  ========================================================  ======================

The model name of a camels run is its folder's parent name (``runs/<model>/<task>/``) unless given; the
model name of an alpaca_eval file is its ``generator`` field.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from camels.core.errors import RecordError
from camels.core.io import iter_jsonl, read_json

PREDICTIONS_FILE = "predictions.jsonl"  # the name camels.core.results gives it
PROMPT_FIELDS = ("instruction", "prompt", "question")


@dataclass
class SystemOutputs:
    """One system's answers: ``model`` name, and per pairing key the prompt and the output text."""

    model: str
    source: str
    prompts: dict[str, str] = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)


@dataclass
class PairedItem:
    key: str
    prompt: str
    output_a: str
    output_b: str


@dataclass
class Pairing:
    """Two systems' outputs on the same prompts, and what could not be paired (counted by reason)."""

    model_a: str
    model_b: str
    items: list[PairedItem]
    skipped: dict[str, int]


def _text(obj: dict[str, Any], name: str, where: str, line: int | None) -> str:
    value = obj.get(name)
    if not isinstance(value, str):
        what = "missing" if name not in obj else f"not a string ({type(value).__name__})"
        raise RecordError("missing_field" if name not in obj else "bad_field", f"{what}", field=name,
                          file=where, line=line)
    return value


def _prompt_of_item(item: Any, where: str, line: int) -> str:
    if not isinstance(item, dict):
        raise RecordError("bad_field", "expected a JSON object", field="item", file=where, line=line)
    for name in PROMPT_FIELDS:
        value = item.get(name)
        if isinstance(value, str) and value.strip():
            extra = item.get("input") if name == "instruction" else None
            if isinstance(extra, str) and extra.strip():
                return f"{value}\n\n{extra}"
            return value
    raise RecordError("missing_field", f"no prompt: the item has none of {', '.join(PROMPT_FIELDS)}",
                      field="item", file=where, line=line)


def read_camels_run(path: str | Path, model: str | None = None) -> SystemOutputs:
    """A camels run folder (or its predictions.jsonl): pairing key = item id."""
    path = Path(path)
    file = path / PREDICTIONS_FILE if path.is_dir() else path
    if not file.is_file():
        raise RecordError("missing_file", f"no {PREDICTIONS_FILE} here", file=str(path))
    if model is None:
        folder = file.parent
        model = folder.parent.name if folder.parent.name else folder.name
    out = SystemOutputs(model=model, source=str(file))
    where = str(file)
    for line, obj in iter_jsonl(file):
        if not isinstance(obj, dict):
            raise RecordError("bad_record", "expected a JSON object", file=where, line=line)
        if "id" not in obj:
            raise RecordError("missing_field", "missing", field="id", file=where, line=line)
        key = str(obj["id"])
        output = obj.get("output")
        if not isinstance(output, str):
            raise RecordError("bad_field", "the output is not a string (was the run a generation task?)",
                              field="output", file=where, line=line)
        if key in out.outputs:
            raise RecordError("duplicate_id", f"id {key!r} appears twice", field="id", file=where, line=line)
        out.prompts[key] = _prompt_of_item(obj.get("item"), where, line)
        out.outputs[key] = output
        out.order.append(key)
    return out


def read_alpaca_outputs(path: str | Path, model: str | None = None) -> SystemOutputs:
    """An alpaca_eval ``model_outputs.json``: pairing key = the instruction text."""
    where = str(path)
    rows = read_json(path)
    if not isinstance(rows, list):
        raise RecordError("bad_record", "expected a JSON list of {instruction, output, generator}", file=where)
    out = SystemOutputs(model=model or "", source=where)
    for i, obj in enumerate(rows):
        try:
            if not isinstance(obj, dict):
                raise RecordError("bad_record", "expected a JSON object")
            instruction = _text(obj, "instruction", where, None)
            output = _text(obj, "output", where, None)
            generator = obj.get("generator")
        except RecordError as e:
            raise RecordError(e.reason, e.detail, field=f"[{i}].{e.field}" if e.field else f"[{i}]",
                              file=where) from None
        if not out.model:
            if not isinstance(generator, str) or not generator:
                raise RecordError("missing_field", "missing (or pass the model name)", field=f"[{i}].generator",
                                  file=where)
            out.model = generator
        if instruction in out.outputs:
            raise RecordError("duplicate_id", "the same instruction appears twice", field=f"[{i}].instruction",
                              file=where)
        out.prompts[instruction] = instruction
        out.outputs[instruction] = output
        out.order.append(instruction)
    return out


def read_outputs(path: str | Path, model: str | None = None) -> SystemOutputs:
    """Either kind of input: a run folder / ``*.jsonl`` is a camels run, a ``*.json`` an alpaca_eval file."""
    path = Path(path)
    if not path.exists():
        raise RecordError("missing_file", "no such file or folder", file=str(path))
    if path.is_dir() or path.suffix in (".jsonl", ".gz"):
        return read_camels_run(path, model)
    return read_alpaca_outputs(path, model)


def pair_outputs(a: SystemOutputs, b: SystemOutputs) -> Pairing:
    """Items both systems answered, in A's order; the rest counted (``only_in_a``, ``only_in_b``, ...)."""
    if a.model == b.model:
        raise RecordError("same_model", f"both inputs name the model {a.model!r}; name them apart",
                          file=f"{a.source}, {b.source}")
    skipped: dict[str, int] = {}
    items = []
    for key in a.order:
        if key not in b.outputs:
            skipped["only_in_a"] = skipped.get("only_in_a", 0) + 1
            continue
        if a.prompts[key] != b.prompts[key]:
            raise RecordError("prompt_mismatch", "the two inputs have different prompts for this item",
                              field=f"id {key!r}", file=b.source)
        items.append(PairedItem(key, a.prompts[key], a.outputs[key], b.outputs[key]))
    only_b = sum(1 for key in b.order if key not in a.outputs)
    if only_b:
        skipped["only_in_b"] = only_b
    return Pairing(a.model, b.model, items, skipped)


# --- judge verdicts (alpaca_eval annotations.json) --------------------------------------------------------
@dataclass(frozen=True)
class JudgeVerdict:
    """One judged comparison: ``winner`` is a model name, or ``None`` for a tie."""

    instruction: str
    model_1: str
    model_2: str
    output_1: str
    output_2: str
    winner: str | None


def verdict_winner(preference: Any, model_1: str, model_2: str) -> tuple[str | None, bool]:
    """alpaca_eval's preference -> ``(winner or None for a tie, parsed)``.

    1 = output_1 preferred, 2 = output_2, 1.5 (or the legacy 0) = a tie, a value in between a weighted
    verdict that goes to the nearer side; ``None``/NaN = a verdict the judge could not give (not parsed).
    Anything else raises ValueError.

    >>> verdict_winner(1, "x", "y"), verdict_winner(2.0, "x", "y"), verdict_winner(0, "x", "y")
    (('x', True), ('y', True), (None, True))
    >>> verdict_winner(None, "x", "y")
    (None, False)
    """
    if preference is None or (isinstance(preference, float) and math.isnan(preference)):
        return None, False
    if isinstance(preference, bool) or not isinstance(preference, int | float) or not (
            preference == 0 or 1 <= preference <= 2):
        raise ValueError(f"expected a number in [1, 2], 0 or null, got {preference!r}")
    if preference == 0 or preference == 1.5:
        return None, True
    return (model_1 if preference < 1.5 else model_2), True


def read_judge_annotations(path: str | Path) -> tuple[list[JudgeVerdict], dict[str, int]]:
    """An alpaca_eval (or ``camels judge``) ``annotations.json``: the verdicts, and skips by reason
    (``unparsed`` for a null preference: the judge gave no verdict). A malformed preference is an error."""
    where = str(path)
    rows = read_json(path)
    if not isinstance(rows, list):
        raise RecordError("bad_record", "expected a JSON list of annotations", file=where)
    verdicts, skipped = [], {}
    for i, obj in enumerate(rows):
        try:
            if not isinstance(obj, dict):
                raise RecordError("bad_record", "expected a JSON object")
            names = ("instruction", "output_1", "output_2", "generator_1", "generator_2")
            instruction, out1, out2, gen1, gen2 = (_text(obj, n, where, None) for n in names)
        except RecordError as e:
            raise RecordError(e.reason, e.detail, field=f"[{i}].{e.field}" if e.field else f"[{i}]",
                              file=where) from None
        try:
            winner, ok = verdict_winner(obj.get("preference"), gen1, gen2)
        except ValueError as e:
            raise RecordError("bad_preference", str(e), field=f"[{i}].preference", file=where) from None
        if not ok:
            skipped["unparsed"] = skipped.get("unparsed", 0) + 1
            continue
        verdicts.append(JudgeVerdict(instruction, gen1, gen2, out1, out2, winner))
    return verdicts, skipped
