"""Unnatural Instructions: JSONL of ``instruction`` and ``instances[{input, output, constraints}]``.

The flat variant found on dataset hubs (``instruction``, ``input``, ``output``, ``constraints`` in one row)
is read too. Rule: the instance's constraints are appended to the instruction on a new line unless empty
or "none" (:func:`with_constraints`); then one of the study's prompt templates per instance, drawn from one
seeded stream in file order. ``reformulations`` (full data) are not used.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from camels.core.chat import Conversation
from camels.data.sources.base import Context, Source, has_keys, text
from camels.data.sources.single_turn import CAMELS, CHOICES, OPTIONS, convert_instruction_rows

NO_CONSTRAINTS = {"", "none", "none."}


def with_constraints(instruction: str, instance: Mapping[str, Any], where: str, *, stripped: bool = False) -> str:
    r"""The instruction with the instance's constraints on a new line, unless they say there are none.

    The study's rule (``as_given``): constraints that are empty, or that are "none" / "none." in any
    case *as written*, are left out; anything else is appended as written (so " None." with a space is
    appended). camels' ``stripped`` compares the stripped text.

    >>> with_constraints("Classify it.", {"constraints": "Answer yes or no."}, "")
    'Classify it.\nAnswer yes or no.'
    >>> with_constraints("Classify it.", {"constraints": "None."}, "")
    'Classify it.'
    >>> with_constraints("Classify it.", {"constraints": " none"}, ""), with_constraints(
    ...     "Classify it.", {"constraints": " none"}, "", stripped=True)
    ('Classify it.\n none', 'Classify it.')
    """
    constraints = text(instance, "constraints", required=False, where=where)
    check = constraints.strip() if stripped else constraints
    if check.lower() in NO_CONSTRAINTS:
        return instruction
    return f"{instruction}\n{constraints}"


def convert(row: Any, ctx: Context) -> list[Conversation]:
    stripped = ctx.options.get("constraints", "as_given") == "stripped"
    return convert_instruction_rows(
        row, ctx, instruction_of=lambda i, inst, where: with_constraints(i, inst, where, stripped=stripped))


SOURCE = Source(
    name="unnatural",
    convert=convert,
    detect=has_keys(("instruction", "instances"), ("instruction", "output")),
    shape="JSONL of instruction, instances[{input, output, constraints}] (or flat rows)",
    rule='constraints appended to the instruction unless empty/"none" as written; the study\'s random template',
    hub="mrm8488/unnatural-instructions-core",
    defaults={**OPTIONS, "constraints": "as_given"},
    choices={**CHOICES, "constraints": ("as_given", "stripped")},
    camels={**CAMELS, "constraints": "stripped"},
)
