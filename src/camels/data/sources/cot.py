"""Chain-of-thought data (the Flan V2 CoT submix).

Two raw shapes:

* JSONL ``inputs``/``targets`` rows (the submix's zero-shot and few-shot exports): converted exactly as
  Flan V2 (:func:`camels.data.sources.flan_v2.flan_prompt`);
* the Flan collection's raw CoT TSV files (``cot_data/<name>_train.tsv``: question, answer, rationale, tab
  separated, no header). The TSV files write line breaks inside the question and the rationale as the two
  characters ``\\n``; they are turned back into line breaks, as FLAN's reader does.

The study trained on FLAN's *rendered* exports (``cot_zsopt.jsonl``, ``cot_fsopt.jsonl``: ``inputs``,
``targets``), converted as Flan V2 rows; those are the files that give the study's records. From the raw
TSVs, the prompts cannot be the study's (FLAN drew its templates in its own pipeline), so two renderings
are offered (option ``tsv_templates``):

* ``flan`` (default): FLAN's own zero-shot CoT templates for that dataset (:mod:`cot_templates`, ten or
  fifteen per dataset, chosen by the file's name), one drawn per row from the conversion's seeded stream;
  ``meta.template`` is ``flan:<set>:<k>``. The rendering is FLAN's; the draw is camels'.
* ``camels``: the question followed by one of camels' own four reasoning requests and the answer
  ``"{rationale}. So the answer is {answer}."`` (a form FLAN does not use); ``meta.template`` is the
  request's name.

Sampling 50k zero-shot + 50k few-shot rows is a mixture's job (the ``tulu-v1`` mixture); every row is
converted.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from camels.core.chat import Conversation
from camels.core.errors import RecordError
from camels.data.sources.base import Context, Source, json_type, numbered
from camels.data.sources.cot_templates import FLAN_COT_TEMPLATES
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
    question, rationale = unescape(row[0]), unescape(row[2])
    answer = row[1]
    base = ctx.base_id()
    rng = ctx.draw(base)
    if ctx.options.get("tsv_templates", "flan") == "flan":
        key = flan_template_set(ctx.stem)
        templates = FLAN_COT_TEMPLATES[key]
        k = rng.randrange(len(templates))
        prompt = templates[k][0].format(question=question)
        target = templates[k][1].format(chain_of_thought=rationale, answer=answer)
        return numbered(base, [([("user", prompt), ("assistant", target)], {"template": f"flan:{key}:{k}"})], ctx)
    name, request, _ = rng.choices(REQUESTS, weights=[w for *_, w in REQUESTS])[0]
    prompt = f"{question.strip()}\n{request}"
    return numbered(base, [([("user", prompt), ("assistant", cot_answer(rationale, unescape(answer)))],
                            {"template": name})], ctx)


def flan_template_set(stem: str) -> str:
    """FLAN's template set for a CoT TSV file, from its name (``gsm8k_train`` -> ``cot_gsm8k``).

    >>> flan_template_set("aqua_train"), flan_template_set("ecqa_train")
    ('stream_aqua', 'cot_ecqa')
    """
    name = stem.rsplit("/", 1)[-1].removesuffix("_train")
    for kind in ("cot", "stream"):
        if f"{kind}_{name}" in FLAN_COT_TEMPLATES:
            return f"{kind}_{name}"
    known = sorted(k.split("_", 1)[1] for k in FLAN_COT_TEMPLATES)
    raise RecordError("unknown_cot_dataset", f"no FLAN CoT templates for a file named {stem!r} (FLAN's files are "
                      f"<name>_train.tsv with name one of {', '.join(known)}); use --option tsv_templates=camels "
                      "for camels' own prompts", field="columns")


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
    rule="as Flan V2 (the study's rendered exports); TSV: FLAN's zero-shot CoT templates, drawn per row",
    hub="conceptofmind/cot_submix_original",
    defaults={"tsv_templates": "flan", "draw": "stream", "empty_output": "keep"},
    choices={"tsv_templates": ("flan", "camels"), "draw": ("stream", "record"), "empty_output": ("keep", "refuse")},
    camels={"tsv_templates": "camels", "draw": "record", "empty_output": "refuse"},
)
