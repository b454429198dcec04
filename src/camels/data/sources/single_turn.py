"""Single-turn sources (instruction, optional input, output) -> one user turn and one assistant turn.

The prompt is drawn from a weighted set of templates with the record's own random generator
(:func:`camels.data.sources.base.rng_for`), so the same record always gets the same template. When the
input is empty a separate set is used (no dangling "Input:" line). The template's name is kept in the
conversation's ``meta["template"]``. ``--option template=NAME`` forces one template for every record.

Rows come in two shapes, both accepted by every single-turn source:

* flat: ``{"instruction", "input", "output"}`` (Alpaca, Code-Alpaca, GPT4-Alpaca, Self-Instruct);
* grouped: ``{"instruction", "instances": [{"input", "output"}, ...]}`` (Self-Instruct and Alpaca seed tasks,
  Unnatural Instructions): one conversation per instance, ids ``<id>#k`` when there are several.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from camels.core.chat import Conversation
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
TEMPLATES = {"with_input": WITH_INPUT, "no_input": NO_INPUT}


def pick_template(has_input: bool, rng: random.Random, forced: str | None = None) -> Template:
    """Draw a template (or take the one named ``forced``) from the set for this kind of record.

    A forced name that exists only in the other set (``input_output`` for a record without input) falls
    back to ``plain``.
    """
    choices = WITH_INPUT if has_input else NO_INPUT
    if forced:
        names = {t.name for t in WITH_INPUT} | {t.name for t in NO_INPUT}
        if forced not in names:
            raise RecordError("bad_option", f"unknown template {forced!r} (known: {', '.join(sorted(names))})",
                              field="template")
        by_name = {t.name: t for t in choices}
        return by_name.get(forced, by_name["plain"])
    return rng.choices(choices, weights=[t.weight for t in choices])[0]


def render(instruction: str, input: str, rng: random.Random, forced: str | None = None) -> tuple[str, str]:
    """``(prompt, template name)`` for one instruction and its (possibly empty) input.

    >>> render("Add the numbers.", "2 3", random.Random(0), forced="input_output")[0]
    'Add the numbers.\\nInput: 2 3\\nOutput:'
    """
    instruction, input = instruction.strip(), input.strip()
    t = pick_template(bool(input), rng, forced)
    return t.text.format(instruction=instruction, input=input), t.name


def single_turn(instruction: str, input: str, output: str, ctx: Context, key: str,
                meta: Mapping[str, Any] | None = None) -> tuple[list[tuple[str, str]], dict[str, Any]]:
    """Messages and meta for one instruction: a templated user turn and the output as assistant turn."""
    prompt, name = render(instruction, input, ctx.rng(key), ctx.options.get("template"))
    return [("user", prompt), ("assistant", output)], {"template": name, **(meta or {})}


def convert_instruction_rows(row: Any, ctx: Context, *, input_key: str = "input", output_key: str = "output",
                             instruction_of=None) -> list[Conversation]:
    """The shared converter of flat and grouped single-turn rows (see the module docstring).

    ``instruction_of(instruction, instance)`` may rewrite the instruction per instance (Unnatural
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
            inp = text(inst, input_key, required=False, where=where)
            out = text(inst, output_key, where=where)
            instr = instruction_of(instruction, inst, where) if instruction_of else instruction
            key = f"{base}#{k}" if len(instances) > 1 else base
            pairs.append(single_turn(instr, inp, out, ctx, key))
        return numbered(base, pairs, ctx)
    inp = text(row, input_key, required=False)
    out = text(row, output_key)
    instr = instruction_of(instruction, row, "") if instruction_of else instruction
    return numbered(base, [single_turn(instr, inp, out, ctx, base)], ctx)
