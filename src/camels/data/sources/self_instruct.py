"""Self-Instruct (82K GPT-3 generated instructions).

Three row shapes are read:

* ``{"instruction", "input", "output"}`` (the JSONL of generated instructions, and the hub's rows);
* ``{"instruction", "instances": [...]}`` (seed tasks, user-oriented evaluation set);
* ``{"prompt", "completion"}`` (``gpt3_finetuning_data.jsonl``): the prompt is already rendered, so it is
  taken verbatim as the user turn and the completion, without its ``<|endoftext|>`` marker, as the answer.
"""

from __future__ import annotations

from typing import Any

from camels.core.chat import Conversation
from camels.data.sources.base import Context, Source, has_keys, need_object, numbered, text
from camels.data.sources.single_turn import CAMELS, CHOICES, OPTIONS, convert_instruction_rows

END_MARKER = "<|endoftext|>"


def convert(row: Any, ctx: Context) -> list[Conversation]:
    row = need_object(row)
    if "prompt" in row and "instruction" not in row:
        prompt = text(row, "prompt")
        completion = text(row, "completion").replace(END_MARKER, "")
        base = ctx.base_id(row.get("id"))
        return numbered(base, [([("user", prompt), ("assistant", completion)], {})], ctx)
    return convert_instruction_rows(row, ctx)


SOURCE = Source(
    name="self_instruct",
    convert=convert,
    detect=has_keys(("instruction", "output"), ("instruction", "instances"), ("prompt", "completion")),
    shape="JSONL of instruction, input, output; or prompt, completion; or instruction, instances",
    rule="random prompt template; prompt/completion rows verbatim (completion's <|endoftext|> removed)",
    hub="yizhongw/self_instruct",
    defaults=OPTIONS,
    choices=CHOICES,
    camels=CAMELS,
)
