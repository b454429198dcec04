"""Single-turn sources (instruction, optional input, output) -> one user turn and one assistant turn.

Options shared by every single-turn source (defaults: the Tülu v1 study's rules, from open-instruct's
``open_instruct/instruction_encode_templates.py`` and ``reformat_datasets.py`` at commit e44fcf5, June
2023, unchanged in these respects up to 503407e, October 2023):

* ``templates``: ``tulu-v1`` (default), the study's 14 templates for a record with an input and 14 without,
  with its weights; ``camels``, camels' own 5 + 4 (:data:`WITH_INPUT`, :data:`NO_INPUT`).
* ``draw``: ``stream`` (default), one generator seeded with the seed and drawn once per record in file
  order, as the study's script does after ``random.seed(42)``; ``record``, a generator per record
  (:func:`camels.data.sources.base.rng_for`), so a record converts the same whatever comes with it.
* ``empty_output``: ``keep`` (default), a row whose output is blank becomes a conversation with an empty
  answer (``meta.empty_answer``), as the study kept it; ``refuse``, it is a broken record
  (``empty_content``).
* ``template``: a template name forced for every record (no draw).

An input that is blank after stripping counts as no input (the study's test). Instruction, input and
output are stripped before they are put in a template. The template's name is kept in
``meta["template"]``.

Rows come in two shapes, both accepted by every single-turn source:

* flat: ``{"instruction", "input", "output"}`` (Alpaca, Code-Alpaca, GPT4-Alpaca, Self-Instruct);
* grouped: ``{"instruction", "instances": [{"input", "output"}, ...]}`` (Self-Instruct and Alpaca seed tasks,
  Unnatural Instructions): one conversation per instance, in order, ids ``<id>#k`` when there are several.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from camels.core.chat import EMPTY_ANSWER, Conversation
from camels.core.errors import RecordError
from camels.data.sources.base import Context, items, need_object, numbered, text


@dataclass(frozen=True)
class Template:
    name: str
    text: str
    weight: float


WITH_INPUT: tuple[Template, ...] = (
    Template("plain", "{instruction}\n\n{input}", 4),
    Template("input_output", "{instruction}\nInput: {input}\nOutput:", 2),
    Template("sections", "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:", 2),
    Template("input_first", "{input}\n\n{instruction}", 1),
    Template("task", "Task: {instruction}\n\n{input}", 1),
)
NO_INPUT: tuple[Template, ...] = (
    Template("plain", "{instruction}", 6),
    Template("sections", "### Instruction:\n{instruction}\n\n### Response:", 2),
    Template("task", "Task: {instruction}", 1),
    Template("answer", "{instruction}\nAnswer:", 1),
)

# The study's templates, in its order and with its weights (the order and the float weights decide which
# template a given random number picks). Trailing whitespace is kept as the study wrote it; camels strips
# stored content, so it does not show in the output. The study's answer template is "{output}" except for
# the third template without input ("\n{output}"), which is the same answer once stripped. Template 0 of
# each set is also the study's fixed (non-random) prompt.
STUDY_WITH_INPUT: tuple[Template, ...] = tuple(Template(f"tulu-in-{i}", t, w) for i, (t, w) in enumerate((
    ("{instruction}\n\n{input}\n\n", 0.2),
    ("{instruction}\n{input}\n\n", 0.1),
    ("{instruction}\n{input}\n", 0.1),
    ("{instruction}\n\nInput: {input}\n\nOutput:", 0.05),
    ("{instruction}\nInput: {input}\nOutput:", 0.05),
    ("{instruction}\n{input}\n\nResponse:", 0.05),
    ("{instruction}\n\nAdditional Context:\n{input}\n\nAnswer:", 0.05),
    ("Task: {instruction}\nInput: {input}\nOutput:", 0.05),
    ("Task: {instruction}\n\n{input}\n\n", 0.05),
    ("Task: {instruction}\n\n{input}\n\nAnswer:", 0.05),
    ("You need to complete the following task:\n\n{instruction}\n\n{input}\n\nAnswer:", 0.05),
    ("{instruction}\n\nNow complete the following instance -\nInput: {input}\nOutput:", 0.05),
    ("Instruction:{instruction}\n\nInput: {input}\n\n", 0.05),
    ("Below is an instruction that describes a task, paired with an input that provides further context. "
     "Write a response that appropriately completes the request.\n\n"
     "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:", 0.1),
)))
STUDY_NO_INPUT: tuple[Template, ...] = tuple(Template(f"tulu-noin-{i}", t, w) for i, (t, w) in enumerate((
    ("{instruction}\n\n", 0.2),
    ("{instruction}\n", 0.1),
    ("{instruction}", 0.1),
    ("{instruction} Output:", 0.05),
    ("{instruction}\nResponse:", 0.05),
    ("{instruction}\n\nAnswer:", 0.05),
    ("Task: {instruction}\n\n", 0.05),
    ("Instruction: {instruction}\n", 0.05),
    ("Instruction: {instruction}\nOutput:", 0.05),
    ("You need to complete the following task:\n\n{instruction}\n\n", 0.05),
    ("Can you help with this?\n\n{instruction}\n", 0.05),
    ("Plase answer the following request: {instruction}\nAnswer:", 0.05),  # "Plase": the study's spelling
    ("Tell me how would you respond to the following request.\n{instruction}\n", 0.05),
    ("Write a response that appropriately completes the request.\n\n"
     "### Instruction:\n{instruction}\n\n### Response:", 0.1),
)))

TEMPLATE_SETS: dict[str, tuple[tuple[Template, ...], tuple[Template, ...]]] = {
    "tulu-v1": (STUDY_WITH_INPUT, STUDY_NO_INPUT),
    "camels": (WITH_INPUT, NO_INPUT),
}
TEMPLATES = {"with_input": WITH_INPUT, "no_input": NO_INPUT}

# Options of every single-turn source: defaults (the study's), allowed values, camels' own choices.
OPTIONS: dict[str, Any] = {"template": None, "templates": "tulu-v1", "draw": "stream", "empty_output": "keep"}
CHOICES: dict[str, tuple[Any, ...]] = {"templates": tuple(TEMPLATE_SETS), "draw": ("stream", "record"),
                                       "empty_output": ("keep", "refuse")}
CAMELS: dict[str, Any] = {"templates": "camels", "draw": "record", "empty_output": "refuse"}


def pick_template(has_input: bool, rng: random.Random, forced: str | None = None,
                  templates: str = "tulu-v1") -> Template:
    """Draw a template (or take the one named ``forced``) from the set for this kind of record.

    Exactly one ``rng.choices`` call per record, with the set's weights in their order, as the study does.
    A forced name that exists only in the other half of the set (``input_output`` for a record without
    input) falls back to the half's first template (``plain``, or the study's fixed prompt).
    """
    if templates not in TEMPLATE_SETS:
        raise RecordError("bad_option", f"unknown template set {templates!r} (known: {', '.join(TEMPLATE_SETS)})",
                          field="templates")
    with_input, no_input = TEMPLATE_SETS[templates]
    choices = with_input if has_input else no_input
    if forced:
        names = {t.name for t in with_input} | {t.name for t in no_input}
        if forced not in names:
            raise RecordError("bad_option", f"unknown template {forced!r} for template set {templates} "
                              f"(known: {', '.join(sorted(names))})", field="template")
        by_name = {t.name: t for t in choices}
        return by_name.get(forced, choices[0])
    return rng.choices(choices, weights=[t.weight for t in choices])[0]


def render(instruction: str, input: str, rng: random.Random, forced: str | None = None,
           templates: str = "tulu-v1") -> tuple[str, str]:
    """``(prompt, template name)`` for one instruction and its (possibly empty) input.

    >>> render("Add the numbers.", "2 3", random.Random(0), forced="input_output", templates="camels")[0]
    'Add the numbers.\\nInput: 2 3\\nOutput:'
    >>> render(" Add the numbers.", "2 3 ", random.Random(0), forced="tulu-in-7")[0]
    'Task: Add the numbers.\\nInput: 2 3\\nOutput:'
    """
    instruction, input = instruction.strip(), input.strip()
    t = pick_template(bool(input), rng, forced, templates)
    return t.text.format(instruction=instruction, input=input), t.name


def single_turn(instruction: str, input: str, output: str, ctx: Context, rng: random.Random,
                meta: Mapping[str, Any] | None = None) -> tuple[list[tuple[str, str]], dict[str, Any]]:
    """Messages and meta for one instruction: a templated user turn and the output as assistant turn."""
    prompt, name = render(instruction, input, rng, ctx.options.get("template"),
                          ctx.options.get("templates", "tulu-v1"))
    extra: dict[str, Any] = {"template": name, **(meta or {})}
    if not output.strip():
        extra[EMPTY_ANSWER] = True
    return [("user", prompt), ("assistant", output)], extra


def _instance(fields: Mapping[str, Any], ctx: Context, key: str, where: str, input_key: str, output_key: str,
              instruction: str, instruction_of) -> tuple[list[tuple[str, str]], dict[str, Any]]:
    """One instance's conversation; a broken instance still uses up its draw of the stream, so the records
    after it get the templates the study's script would give them."""
    rng = ctx.draw(key)
    try:
        inp = text(fields, input_key, required=False, where=where)
        out = text(fields, output_key, where=where, allow_empty=ctx.options.get("empty_output", "keep") == "keep")
        instr = instruction_of(instruction, fields, where) if instruction_of else instruction
    except RecordError:
        if not ctx.options.get("template"):
            rng.random()  # what random.choices would have used
        raise
    return single_turn(instr, inp, out, ctx, rng)


def convert_instruction_rows(row: Any, ctx: Context, *, input_key: str = "input", output_key: str = "output",
                             instruction_of=None) -> list[Conversation]:
    """The shared converter of flat and grouped single-turn rows (see the module docstring).

    ``instruction_of(instruction, instance, where)`` may rewrite the instruction per instance (Unnatural
    Instructions appends constraints).
    """
    row = need_object(row)
    instruction = text(row, "instruction")
    base = ctx.base_id(row.get("id"))
    if "instances" in row:
        pairs = []
        instances = items(row, "instances")
        if not instances:
            raise RecordError("empty_content", "no instances", field="instances")
        for k, inst in enumerate(instances):
            where = f"instances[{k}]."
            if not isinstance(inst, Mapping):
                raise RecordError("bad_type", "expected an object", field=f"instances[{k}]")
            key = f"{base}#{k}" if len(instances) > 1 else base
            pairs.append(_instance(inst, ctx, key, where, input_key, output_key, instruction, instruction_of))
        return numbered(base, pairs, ctx)
    return numbered(base, [_instance(row, ctx, base, "", input_key, output_key, instruction, instruction_of)], ctx)
