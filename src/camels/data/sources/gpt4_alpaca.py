"""GPT4-Alpaca: the Alpaca instructions answered by GPT-4, JSON list of instruction, input, output.

Seed-task files (``instruction`` + ``instances[{input, output}]``) are read too. Rule: one of the study's
prompt templates per record, drawn from one seeded stream in file order; a blank output is kept as an
empty answer (:mod:`camels.data.sources.single_turn`, which also lists camels' own options).
"""

from __future__ import annotations

from typing import Any

from camels.core.chat import Conversation
from camels.data.sources.base import Context, Source, has_keys
from camels.data.sources.single_turn import CAMELS, CHOICES, OPTIONS, convert_instruction_rows


def convert(row: Any, ctx: Context) -> list[Conversation]:
    return convert_instruction_rows(row, ctx)


SOURCE = Source(
    name="gpt4_alpaca",
    convert=convert,
    detect=has_keys(("instruction", "output"), ("instruction", "instances")),
    shape="JSON list or JSONL of instruction, input, output",
    rule="the study's random prompt template (one seeded stream in file order); input may be empty",
    hub="vicgalle/alpaca-gpt4",
    defaults=OPTIONS,
    choices=CHOICES,
    camels=CAMELS,
)
