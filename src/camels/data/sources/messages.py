"""Records already in the unified format (``{"dataset", "id", "messages"}``), e.g. a released mixture.

The record's own ``dataset`` and ``id`` are kept (they name the original source); when absent they become
``messages`` and ``<file stem>:<row index>``. Messages are validated like every other conversation.
"""

from __future__ import annotations

from typing import Any

from camels.core.chat import Conversation
from camels.data.sources.base import Context, Source, has_keys, need_object


def convert(row: Any, ctx: Context) -> list[Conversation]:
    row = dict(need_object(row))
    if not isinstance(row.get("id"), str) or not row["id"].strip():
        row["id"] = ctx.base_id(row.get("id"))
    if not row.get("dataset"):
        row["dataset"] = ctx.source
    return [Conversation.from_dict(row)]


SOURCE = Source(
    name="messages",
    convert=convert,
    detect=has_keys(("messages",)),
    shape='JSONL of {"dataset", "id", "messages": [{"role", "content"}]}',
    rule="validated as is; own dataset and id kept",
    hub="allenai/tulu-v1-sft-mixture",
)
