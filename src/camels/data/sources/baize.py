"""Baize: self-chat transcripts, a JSON list of ``{"topic", "input"}`` where ``input`` reads
``"The conversation between human and AI assistant.\\n[|Human|] ...\\n[|AI|] ...\\n[|Human|] "``.

The study's rule (``rules=study``, the default; open-instruct ``convert_baize_data``, e44fcf5): the
transcript is split at ``[|Human|]`` and the text before the first one is dropped; each part is a round,
``human [|AI|] answer``; a blank part or a part without ``[|AI|]`` is skipped; the human and AI texts are
stripped and kept even when empty. Where camels cannot follow it, it departs and counts:

* a round with several ``[|AI|]`` markers makes the study's script stop with an error (it splits the
  round into exactly two); camels drops that round;
* an empty human part, or an empty answer before the last round, cannot be a camels turn: that round is
  dropped. An empty answer in the last round is kept (``meta.empty_answer``), as the study kept it;
* a transcript without any round gives a record with no messages in the study; camels skips it
  (``no_complete_round``).

Dropped rounds (a non-blank part without ``[|AI|]`` included) are counted in ``meta["dropped_rounds"]``.

camels' own rule (``rules=camels``): the text before the first marker is a preamble; rounds without an
AI part (two human parts in a row) or with an empty part are dropped, and a final human part with no
answer is counted as dropped.
"""

from __future__ import annotations

import re
from typing import Any

from camels.core.chat import EMPTY_ANSWER, Conversation
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


def study_rounds(transcript: str) -> tuple[list[tuple[str, str]], int]:
    """The study's rounds (see the module docstring) and the number camels drops.

    >>> study_rounds("Intro [|AI|] x\\n[|Human|] Hi\\n[|AI|] Hello!\\n[|Human|] Two\\n[|Human|] Bye\\n[|AI|] ")
    ([('Hi', 'Hello!'), ('Bye', '')], 1)
    """
    found = []
    dropped = 0
    for part in transcript.split("[|Human|]")[1:]:
        if not part.strip():
            continue
        pieces = part.split("[|AI|]")
        if len(pieces) != 2:  # none: the study skips it; several: the study's script fails
            dropped += 1
            continue
        found.append((pieces[0].strip(), pieces[1].strip()))
    out = []
    for k, (human, ai) in enumerate(found):
        if not human or (not ai and k < len(found) - 1):
            dropped += 1
            continue
        out.append((human, ai))
    return out, dropped


def convert(row: Any, ctx: Context) -> list[Conversation]:
    row = need_object(row)
    if ctx.options.get("rules", "study") == "study":
        complete, dropped = study_rounds(text(row, "input"))
    else:
        complete, dropped = rounds(text(row, "input"))
    if not complete:
        raise Skip("no_complete_round", "no [|Human|] part is followed by an [|AI|] part")
    messages = [m for h, a in complete for m in (("user", h), ("assistant", a))]
    meta: dict[str, Any] = {"dropped_rounds": dropped} if dropped else {}
    if not complete[-1][1]:
        meta[EMPTY_ANSWER] = True
    if isinstance(row.get("topic"), str):
        meta["topic"] = row["topic"]
    return numbered(ctx.base_id(row.get("id")), [(messages, meta)], ctx)


SOURCE = Source(
    name="baize",
    convert=convert,
    detect=has_keys(("input",)),
    shape="JSON list of topic, input (transcript with [|Human|] / [|AI|] markers)",
    rule="split at [|Human|] into rounds; parts without [|AI|] skipped; multi-turn",
    hub=None,
    defaults={"rules": "study"},
    choices={"rules": ("study", "camels")},
    camels={"rules": "camels"},
)
