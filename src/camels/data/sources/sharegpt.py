"""ShareGPT: a JSON list of ``{"id", "conversations": [{"from", "value"}, ...]}``.

Rule: ``human`` -> user, ``gpt`` -> assistant; a ``system`` turn is allowed first. A conversation with
any other speaker (``bing``, ``chatgpt`` ...) is skipped (``other_role``), one whose turns do not
alternate user/assistant is skipped (``non_alternating``), and a trailing user turn with no answer is cut.
These are the dataset's rule, so they are counted in the manifest in strict mode too.

Long conversations are split into chunks of whole (user, assistant) pairs whose content fits a token
budget (option ``max_tokens``, default 2048; the system turn, when present, starts every chunk and counts
in each). Tokens are counted with the tokenizer given to ``camels data convert --tokenizer`` or, without
one, as whitespace-separated words (about 0.75 of a LLaMA token count on English). Only message content
is counted, not the chat format's markers. A single pair over the budget stays one chunk of its own
(``meta["over_budget"] = true``): the trainer truncates it. Chunk ids are ``<id>#k``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from camels.core.chat import Conversation
from camels.core.errors import RecordError
from camels.data.sources.base import Context, Skip, Source, has_keys, items, need_object, numbered, text

ROLES = {"human": "user", "gpt": "assistant", "system": "system"}


def turns(row: Mapping[str, Any]) -> list[tuple[str, str]]:
    out = []
    for i, turn in enumerate(items(row, "conversations")):
        where = f"conversations[{i}]."
        if not isinstance(turn, Mapping):
            raise RecordError("bad_type", "expected an object", field=f"conversations[{i}]")
        speaker = text(turn, "from", where=where)
        if speaker not in ROLES:
            raise Skip("other_role", f"speaker {speaker!r} is not human, gpt or system",
                       field=f"{where}from")
        if speaker == "system" and i > 0:
            raise Skip("non_alternating", "a system turn after the first", field=f"{where}from")
        out.append((ROLES[speaker], text(turn, "value", where=where)))
    return out


def chunks(system: list[tuple[str, str]], pairs: list[list[tuple[str, str]]], ctx: Context
           ) -> list[tuple[list[tuple[str, str]], dict[str, Any]]]:
    budget = ctx.option("max_tokens")
    count = ctx.count_tokens
    fixed = sum(count(c) for _, c in system)
    out, current, used = [], [], fixed
    for pair in pairs:
        size = sum(count(c) for _, c in pair)
        if current and budget is not None and used + size > budget:
            out.append(current)
            current, used = [], fixed
        current.append(pair)
        used += size
    out.append(current)
    result = []
    for chunk in out:
        meta = {}
        if budget is not None and fixed + sum(count(c) for p in chunk for _, c in p) > budget:
            meta["over_budget"] = True
        result.append((system + [m for p in chunk for m in p], meta))
    return result


def convert(row: Any, ctx: Context) -> list[Conversation]:
    row = need_object(row)
    messages = turns(row)
    system = messages[:1] if messages and messages[0][0] == "system" else []
    body = messages[len(system):]
    if body and body[-1][0] == "user":
        body = body[:-1]
    if not body:
        raise Skip("no_assistant", "no user/assistant exchange")
    for i, (role, _) in enumerate(body):
        if role != ("user" if i % 2 == 0 else "assistant"):
            raise Skip("non_alternating", f"turn {i + len(system)} is {role} out of turn",
                       field=f"conversations[{i + len(system)}].from")
    pairs = [body[i:i + 2] for i in range(0, len(body), 2)]
    return numbered(ctx.base_id(row.get("id")), chunks(system, pairs, ctx), ctx)


SOURCE = Source(
    name="sharegpt",
    convert=convert,
    detect=has_keys(("conversations",)),
    shape="JSON list of id, conversations[{from: human/gpt/system, value}]",
    rule="human->user, gpt->assistant; other speakers or broken alternation skipped; "
         "split into chunks of whole turn pairs under max_tokens (2048)",
    hub="anon8231489123/ShareGPT_Vicuna_unfiltered",
    defaults={"max_tokens": 2048},
)
