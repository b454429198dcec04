"""Chain-of-thought data (the Flan V2 CoT submix).

Two raw shapes:

* JSONL ``inputs``/``targets`` rows (the submix's zero-shot and few-shot exports): converted exactly as
  Flan V2 (:func:`camels.data.sources.flan_v2.flan_prompt`);
* the Flan collection's raw CoT TSV files (``cot_data/*_train.tsv``: question, answer, rationale, tab
  separated, no header). A row becomes a question followed by one of a weighted set of reasoning
  requests, drawn per row with the seeded generator, and an answer that gives the rationale first and then
  the answer: ``"{rationale}. So the answer is {answer}."`` (periods are not doubled). The TSV files write
  line breaks inside a field as the two characters ``\\n``; they are turned back into line breaks.

Sampling 50k zero-shot + 50k few-shot rows is a mixture's job; every row is converted.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from camels.core.chat import Conversation
from camels.core.errors import RecordError
from camels.data.sources.base import Context, Source, json_type, numbered
from camels.data.sources.flan_v2 import convert_inputs_targets

# (name, text appended to the question, weight)
REQUESTS = (
    ("step_by_step", "Let's think step by step.", 3),
    ("explain", "Explain your reasoning, then give the answer.", 2),
    ("stream", "Give a stream of consciousness before answering.", 1),
    ("justify", "Answer the question and justify your answer.", 1),
)


def cot_answer(rationale: str, answer: str) -> str:
    """
    >>> cot_answer("2 + 2 = 4", "4")
    '2 + 2 = 4. So the answer is 4.'
    >>> cot_answer("It rains.", "yes.")
    'It rains. So the answer is yes.'
    """
    answer, rationale = answer.strip(), rationale.strip()
    return f"{_sentence(rationale)} So the answer is {_sentence(answer)}"


def _sentence(text: str) -> str:
    return text if text.endswith((".", "!", "?")) else text + "."


def unescape(field: str) -> str:
    r"""The TSV files' escaped line breaks back to real ones.

    >>> unescape(r"Options:\n(A) 1") == "Options:\n(A) 1"
    True
    """
    return field.replace("\\n", "\n")


def convert_tsv_row(row: Sequence[Any], ctx: Context) -> list[Conversation]:
    if len(row) != 3:
        raise RecordError("bad_columns", f"expected 3 tab-separated columns (question, answer, rationale), "
                          f"got {len(row)}", field="columns")
    names = ("question", "answer", "rationale")
    for name, value in zip(names, row):
        if not isinstance(value, str):
            raise RecordError("bad_type", f"expected a string, got {json_type(value)}", field=name)
        if not value.strip():
            raise RecordError("empty_content", "text is empty", field=name)
    question, answer, rationale = (unescape(v) for v in row)
    base = ctx.base_id()
    rng = ctx.rng(base)
    name, request, _ = rng.choices(REQUESTS, weights=[w for *_, w in REQUESTS])[0]
    prompt = f"{question.strip()}\n{request}"
    return numbered(base, [([("user", prompt), ("assistant", cot_answer(rationale, answer))],
                            {"template": name})], ctx)


def convert(row: Any, ctx: Context) -> list[Conversation]:
    if isinstance(row, (list, tuple)):
        return convert_tsv_row(row, ctx)
    return convert_inputs_targets(row, ctx)


def detect(row: Any) -> bool:
    if isinstance(row, (list, tuple)):
        return len(row) == 3
    return isinstance(row, dict) and "inputs" in row and "targets" in row


SOURCE = Source(
    name="cot",
    convert=convert,
    detect=detect,
    formats=("json", "jsonl", "tsv", "parquet", "hf"),
    shape="JSONL of inputs, targets; or Flan CoT TSV (question, answer, rationale; no header)",
    rule='as Flan V2; TSV: question + reasoning request -> "{rationale} So the answer is {answer}."',
    hub="conceptofmind/cot_submix_original",
)
