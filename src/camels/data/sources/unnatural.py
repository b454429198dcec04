"""Unnatural Instructions: JSONL of ``instruction`` and ``instances[{input, output, constraints}]``.

The flat variant found on dataset hubs (``instruction``, ``input``, ``output``, ``constraints`` in one row)
is read too. Rule: the instance's constraints are appended to the instruction on a new line unless empty
or "none"; then a random prompt template per instance. ``reformulations`` (full data) are not used.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from camels.core.chat import Conversation
from camels.data.sources.base import Context, Source, has_keys, text
from camels.data.sources.single_turn import convert_instruction_rows

NO_CONSTRAINTS = {"", "none", "none."}


def with_constraints(instruction: str, instance: Mapping[str, Any], where: str) -> str:
    """
    >>> with_constraints("Classify it.", {"constraints": "Answer yes or no."}, "")
    'Classify it.\\nAnswer yes or no.'
    >>> with_constraints("Classify it.", {"constraints": "None."}, "")
    'Classify it.'
    """
    constraints = text(instance, "constraints", required=False, where=where).strip()
    if constraints.lower() in NO_CONSTRAINTS:
        return instruction
    return f"{instruction.strip()}\n{constraints}"


def convert(row: Any, ctx: Context) -> list[Conversation]:
    return convert_instruction_rows(row, ctx, instruction_of=with_constraints)


SOURCE = Source(
    name="unnatural",
    convert=convert,
    detect=has_keys(("instruction", "instances"), ("instruction", "output")),
    shape="JSONL of instruction, instances[{input, output, constraints}] (or flat rows)",
    rule='constraints appended to the instruction unless empty/"none"; random prompt template',
    hub="mrm8488/unnatural-instructions-core",
    defaults={"template": None},
)
