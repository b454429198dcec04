"""Baize: self-chat transcripts, a JSON list of ``{"topic", "input"}`` where ``input`` reads
``"The conversation between human and AI assistant.\\n[|Human|] ...\\n[|AI|] ...\\n[|Human|] "``.

Rule: the text before the first marker is a preamble and is dropped; the transcript is cut into rounds
(a ``[|Human|]`` part followed by an ``[|AI|]`` part); rounds without an AI part (the trailing empty
``[|Human|]``, two human parts in a row) or with an empty part are dropped, the rest is one multi-turn
conversation. The number of dropped rounds is kept in ``meta["dropped_rounds"]`` when non-zero; a
transcript with no complete round is skipped (``no_complete_round``).
"""

from __future__ import annotations

import re
from typing import Any

from camels.core.chat import Conversation
from camels.data.sources.base import Context, Skip, Source, has_keys, need_object, numbered, text

MARKER = re.compile(r"\[\|(Human|AI)\|\]")


def parts(transcript: str) -> list[tuple[str, str]]:
    """``[(speaker, text), ...]`` in order, preamble dropped.

    >>> parts("Intro.\\n[|Human|] Hi\\n[|AI|] Hello!\\n[|Human|] ")
    [('Human', 'Hi'), ('AI', 'Hello!'), ('Human', '')]
    """
    pieces = MARKER.split(transcript)
    return [(pieces[i], pieces[i + 1].strip()) for i in range(1, len(pieces) - 1, 2)]


def rounds(transcript: str) -> tuple[list[tuple[str, str]], int]:
    """Complete ``(human, ai)`` rounds and the number of incomplete ones dropped."""
    out, dropped, human = [], 0, None
    for speaker, said in parts(transcript):
        if speaker == "Human":
            if human is not None:
                dropped += 1
            human = said
        else:
            if human and said:
                out.append((human, said))
            else:
                dropped += 1
            human = None
    if human is not None and human.strip():  # a final human part that got no answer
        dropped += 1
    return out, dropped


def convert(row: Any, ctx: Context) -> list[Conversation]:
    row = need_object(row)
    complete, dropped = rounds(text(row, "input"))
    if not complete:
        raise Skip("no_complete_round", "no [|Human|] part is followed by a non-empty [|AI|] part")
    messages = [m for h, a in complete for m in (("user", h), ("assistant", a))]
    meta = {"dropped_rounds": dropped} if dropped else {}
    if isinstance(row.get("topic"), str):
        meta["topic"] = row["topic"]
    return numbered(ctx.base_id(row.get("id")), [(messages, meta)], ctx)


SOURCE = Source(
    name="baize",
    convert=convert,
    detect=has_keys(("input",)),
    shape="JSON list of topic, input (transcript with [|Human|] / [|AI|] markers)",
    rule="split into rounds; rounds without an AI part dropped; multi-turn",
    hub=None,
)
