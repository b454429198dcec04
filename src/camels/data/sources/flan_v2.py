"""Flan V2 (a resample of the Flan collection): JSONL of ``inputs`` and ``targets``.

Rule: the prompt is ``inputs`` followed by a newline unless it already ends with a newline or ":", the
answer is ``targets`` (:func:`flan_prompt`). Sampling 100k of the collection is a mixture's job
(``camels data mix``), not the converter's: every row is converted.

Note on the newline rule: the unified record stores stripped content (SPEC §1), and every chat format
puts a newline between the user turn and the assistant header, so in the stored record the rule is
visible only through :func:`flan_prompt`, which is kept for plain (non-chat) rendering and for tests.
"""

from __future__ import annotations

from typing import Any

from camels.core.chat import EMPTY_ANSWER, Conversation
from camels.data.sources.base import Context, Source, has_keys, need_object, numbered, text


def flan_prompt(inputs: str) -> str:
    """
    >>> flan_prompt("Translate: hello"), flan_prompt("Q: why?\\nA:"), flan_prompt("done\\n")
    ('Translate: hello\\n', 'Q: why?\\nA:', 'done\\n')
    """
    return inputs if inputs.endswith(("\n", ":")) else inputs + "\n"


def convert_inputs_targets(row: Any, ctx: Context) -> list[Conversation]:
    row = need_object(row)
    prompt = flan_prompt(text(row, "inputs"))
    target = text(row, "targets", allow_empty=ctx.options.get("empty_output", "keep") == "keep")
    meta: dict[str, Any] = {k: row[k] for k in ("task_name", "template_type") if isinstance(row.get(k), str)}
    if not target.strip():
        meta[EMPTY_ANSWER] = True  # the study kept every row
    return numbered(ctx.base_id(row.get("id")), [([("user", prompt), ("assistant", target)], meta)], ctx)


SOURCE = Source(
    name="flan_v2",
    convert=convert_inputs_targets,
    detect=has_keys(("inputs", "targets")),
    shape="JSONL of inputs, targets",
    rule='prompt = inputs (+ "\\n" unless it ends with a newline or ":"), answer = targets (kept when empty)',
    hub="SirNeural/flan_v2",
    defaults={"empty_output": "keep"},
    choices={"empty_output": ("keep", "refuse")},
    camels={"empty_output": "refuse"},
)
