"""Databricks Dolly 15k: JSONL of ``instruction``, ``context``, ``response``, ``category``.

Rule: random prompt template per record with the context as the input (often empty).
"""

from __future__ import annotations

from typing import Any

from camels.core.chat import Conversation
from camels.data.sources.base import Context, Source, has_keys
from camels.data.sources.single_turn import CAMELS, CHOICES, OPTIONS, convert_instruction_rows


def convert(row: Any, ctx: Context) -> list[Conversation]:
    return convert_instruction_rows(row, ctx, input_key="context", output_key="response")


SOURCE = Source(
    name="dolly",
    convert=convert,
    detect=has_keys(("instruction", "response")),
    shape="JSONL of instruction, context, response, category",
    rule="random prompt template, context as the input",
    hub="databricks/databricks-dolly-15k",
    defaults=OPTIONS,
    choices=CHOICES,
    camels=CAMELS,
)
