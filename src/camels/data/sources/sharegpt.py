"""ShareGPT: a JSON list of ``{"id", "conversations": [{"from", "value"}, ...]}``.

The study's rules (``rules=study``, the default), from open-instruct's
``scripts/split_sharegpt_conversations.py`` (e44fcf5, June 2023; run with ``--max-length 2048`` for Tülu v1
by ``scripts/prepare_train_data.sh`` of 503407e) and ``convert_sharegpt_data``:

1. a conversation with an odd number of messages loses its last one; fewer than 2 gives nothing;
2. each message costs its token count plus ``overhead`` (7: the study adds 6 to the length of
   ``tokenizer(value).input_ids``, which holds LLaMA's BOS token besides the text's tokens); messages are
   taken in pairs (whatever their speakers) and packed greedily into chunks of at most ``max_tokens``
   (2048); a pair costing more than the budget is dropped and the next pair starts a new chunk;
3. a chunk is kept only if its speakers are exactly ``human``, ``gpt``, ``human``, ``gpt`` ...: a chunk
   with a ``system``, ``bing``, ``chatgpt``, ``user`` ... message is dropped (so a conversation that opens
   with a system message gives nothing, its pairs being (system, human), (gpt, human) ...);
4. ``human`` -> user, ``gpt`` -> assistant.

One departure from the study's script, a plain bug there: when the budget is exceeded at the last pair,
the script closes the chunk before it and never emits the last pair's chunk. camels emits it.

Tokens are counted with the tokenizer given to ``camels data convert --tokenizer`` (the study: LLaMA's) or,
without one, as whitespace-separated words. Dropped chunks and pairs of a conversation that gives other
chunks are counted in its first chunk's ``meta`` (``dropped_chunks``, ``dropped_pairs``) and in the
manifest; a conversation that gives nothing is a skipped record (reason of its first dropped chunk).

camels' own rules (``rules=camels``, ``--preset camels``): ``system`` is allowed first and starts every
chunk; a conversation with any other speaker is skipped (``other_role``), one whose turns do not
alternate is skipped (``non_alternating``), a trailing user turn is cut; only message content is counted
(no overhead); a single pair over the budget stays a chunk of its own (``meta["over_budget"] = true``).
Chunk ids are ``<id>#k``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from camels.core.chat import EMPTY_ANSWER, Conversation
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
    overhead = ctx.options.get("overhead", 0)

    def count(text: str) -> int:
        return ctx.count_tokens(text) + overhead

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


STUDY_ROLES = ("human", "gpt")


def study_chunks(lengths: list[int], budget: int | None) -> tuple[list[list[int]], int]:
    """Pair indices grouped into chunks by the study's greedy rule, and the number of pairs dropped as
    longer than the budget. ``lengths`` are the pairs' costs.

    >>> study_chunks([3, 4, 2, 9, 1], 6)
    ([[0], [1, 2], [4]], 1)
    """
    chunks, current, used, dropped = [], [], 0, 0
    for j, size in enumerate(lengths):
        if budget is not None and size > budget:
            if current:
                chunks.append(current)
            current, used = [], 0
            dropped += 1
            continue
        if current and budget is not None and used + size > budget:
            chunks.append(current)
            current, used = [], 0
        current.append(j)
        used += size
    if current:  # the study's script loses this chunk when the last split fell on the last pair
        chunks.append(current)
    return chunks, dropped


def _chunk_problem(speakers: list[str]) -> str | None:
    for k, speaker in enumerate(speakers):
        if speaker != STUDY_ROLES[k % 2]:
            if speaker == "system":
                return "system_turn"
            return "non_alternating" if speaker in STUDY_ROLES else "other_role"
    return None


def convert_study(row: Mapping[str, Any], ctx: Context) -> list[Conversation]:
    raw = []
    for i, turn in enumerate(items(row, "conversations")):
        where = f"conversations[{i}]."
        if not isinstance(turn, Mapping):
            raise RecordError("bad_type", "expected an object", field=f"conversations[{i}]")
        raw.append((text(turn, "from", where=where), text(turn, "value", where=where, allow_empty=True)))
    raw = raw[: len(raw) // 2 * 2]
    if not raw:
        raise Skip("no_assistant", "fewer than two messages")
    overhead = ctx.options.get("overhead", 7)
    cost = [ctx.count_tokens(value) + overhead for _, value in raw]
    pairs, dropped_pairs = study_chunks([cost[i] + cost[i + 1] for i in range(0, len(raw), 2)],
                                        ctx.option("max_tokens"))
    kept, dropped = [], []
    for chunk in pairs:
        messages = [raw[i] for j in chunk for i in (2 * j, 2 * j + 1)]
        problem = _chunk_problem([speaker for speaker, _ in messages])
        if problem is None and any(not v.strip() for _, v in messages[:-1]):
            problem = "empty_turn"  # camels' records hold no empty turn but a final answer
        if problem:
            dropped.append(problem)
            continue
        meta = {EMPTY_ANSWER: True} if not messages[-1][1].strip() else {}
        kept.append(([(STUDY_ROLES_TO[s], v) for s, v in messages], meta))
    if not kept:
        if dropped:
            raise Skip(dropped[0], "no chunk has only human/gpt turns in order" if dropped[0] != "empty_turn"
                       else "every chunk has an empty turn")
        raise Skip("over_budget", "every pair is longer than the budget")
    if dropped:
        kept[0][1]["dropped_chunks"] = len(dropped)
    if dropped_pairs:
        kept[0][1]["dropped_pairs"] = dropped_pairs
    return numbered(ctx.base_id(row.get("id")), kept, ctx)


STUDY_ROLES_TO = {"human": "user", "gpt": "assistant"}


def convert(row: Any, ctx: Context) -> list[Conversation]:
    row = need_object(row)
    if ctx.options.get("rules", "study") == "study":
        return convert_study(row, ctx)
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
    rule="the study's split: pairs of messages packed under max_tokens (2048) counting 7 tokens of overhead "
         "per message, over-long pairs dropped; chunks other than human/gpt in turn dropped",
    hub="anon8231489123/ShareGPT_Vicuna_unfiltered",
    defaults={"max_tokens": 2048, "overhead": 7, "rules": "study"},
    choices={"rules": ("study", "camels")},
    camels={"rules": "camels", "overhead": 0},
)
