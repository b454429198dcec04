"""OpenAssistant Conversations (oasst1): message trees -> one conversation per root-to-leaf path.

Raw shapes read:

* the official tree export (``*.trees.jsonl``): ``{"message_tree_id", "prompt": {message}}``;
* a root message with nested ``replies`` (``*_message.jsonl`` style exports);
* the flat message table (the hub's parquet/JSONL rows: ``message_id``, ``parent_id``, ``role``, ``text``,
  ``deleted``, ``rank``, ``lang`` ... one message per row). :func:`assemble` groups those rows into trees
  in memory before conversion; then one *record* is one tree, and a row whose parent is absent from the
  file is counted as a skipped record (``orphan_message``).

A message has ``role`` ("prompter" -> user, "assistant" -> assistant), ``text``, ``replies``, ``deleted``,
``rank`` (0 = best among siblings, null when unranked) and ``labels`` (``{"quality": {"value": ..}}`` in
tree exports, ``{"name": [..], "value": [..]}`` in the flat table).

The study's rule (open-instruct ``reformat_datasets.py``, ``convert_oasst1_data`` from 853377e, August
2023, with ``top_k_reply`` from 503407e, October 2023; the default, ``paths=study``, ``order=quality``):
every path from the root to an assistant message that has no replies at all is a conversation; a path
that ends with a prompter message, or with an assistant message whose replies are all deleted, gives
nothing. Deleted messages are left out with their subtree. Replies are visited in file order; with
``top_k`` only the k replies with the highest ``labels.quality.value`` (0 when absent; ties in file
order) are kept.

camels' own rule (``paths=cut``, ``order=rank``, ``--preset camels``): a path ending with a prompter
message loses that last turn (nothing to learn after it) instead of being dropped, paths that become
identical are kept once, and replies are ordered by ``rank`` (0 = best), then quality.

Other options: ``skip_deleted`` (default true) drops deleted messages with their subtree, ``lang`` keeps
trees whose root has that language (None = all). Conversation ids: ``<message_tree_id>`` or
``<message_tree_id>#k`` for the k-th path in depth-first order.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from camels.core.chat import Conversation
from camels.core.errors import RecordError
from camels.data.sources.base import Context, Skip, Source, items, json_type, need_object, numbered, text

ROLES = {"prompter": "user", "assistant": "assistant"}


def quality(message: Mapping[str, Any]) -> float:
    """The quality label's value, or NaN when absent (both label layouts)."""
    labels = message.get("labels")
    if isinstance(labels, Mapping):
        q = labels.get("quality")
        if isinstance(q, Mapping) and isinstance(q.get("value"), (int, float)):
            return float(q["value"])
        names, values = labels.get("name"), labels.get("value")
        if isinstance(names, list) and isinstance(values, list) and "quality" in names:
            v = values[names.index("quality")]
            if isinstance(v, (int, float)):
                return float(v)
    return math.nan


def study_key(message: Mapping[str, Any]) -> float:
    """The study's order: highest quality first, an absent quality label counting as 0."""
    q = quality(message)
    return -(0.0 if math.isnan(q) else q)


def order_key(message: Mapping[str, Any]) -> tuple[float, float]:
    rank = message.get("rank")
    q = quality(message)
    return (rank if isinstance(rank, (int, float)) and not isinstance(rank, bool) else math.inf,
            -q if not math.isnan(q) else math.inf)


def _replies(node: Mapping[str, Any], where: str, ctx: Context) -> list[tuple[str, Mapping[str, Any]]]:
    children = []
    for i, child in enumerate(items(node, "replies", where=where, required=False)):
        if not isinstance(child, Mapping):
            raise RecordError("bad_type", f"expected an object, got {json_type(child)}",
                              field=f"{where}replies[{i}]")
        if ctx.option("skip_deleted") and child.get("deleted") is True:
            continue
        children.append((f"{where}replies[{i}].", child))
    top_k = ctx.option("top_k")
    if ctx.options.get("order", "quality") == "rank":
        children.sort(key=lambda c: order_key(c[1]))  # stable: unranked replies keep file order
    elif top_k is not None:
        children.sort(key=lambda c: study_key(c[1]))  # stable: equal quality keeps file order
    return children[:top_k] if top_k is not None else children


def _paths(node: Mapping[str, Any], where: str, ctx: Context) -> Iterator[list[tuple[str, str]]]:
    role = node.get("role")
    if role not in ROLES:
        if "role" not in node:
            raise RecordError("missing_field", "required field is missing", field=f"{where}role")
        raise RecordError("unknown_role", f"unknown role {role!r} (expected prompter or assistant)",
                          field=f"{where}role")
    turn = (ROLES[role], text(node, "text", where=where))
    children = _replies(node, where, ctx)
    if ctx.options.get("paths", "study") == "study":
        # the study: a path ends only at an assistant message without any reply (deleted ones count)
        if role == "assistant" and not items(node, "replies", where=where, required=False):
            yield [turn]
    elif not children:
        yield [turn]
    for child_where, child in children:
        for rest in _paths(child, child_where, ctx):
            yield [turn, *rest]


def convert(row: Any, ctx: Context) -> list[Conversation]:
    row = need_object(row)
    if "prompt" in row:
        root, where = row["prompt"], "prompt."
        if not isinstance(root, Mapping):
            raise RecordError("bad_type", f"expected an object, got {json_type(root)}", field="prompt")
        base = ctx.base_id(row.get("message_tree_id") or root.get("message_id"))
    else:
        root, where = row, ""
        base = ctx.base_id(row.get("message_tree_id") or row.get("message_id"))
    if ctx.option("skip_deleted") and root.get("deleted") is True:
        raise Skip("deleted_root", "the tree's first message is deleted")
    lang = ctx.option("lang")
    if lang is not None and root.get("lang") != lang:
        raise Skip("other_language", f"language {root.get('lang')!r} is not {lang!r}")
    if root.get("role") == "assistant":
        raise RecordError("bad_alternation", "a tree must start with a prompter message", field=f"{where}role")
    seen: set[tuple[tuple[str, str], ...]] = set()
    paths = []
    for path in _paths(root, where, ctx):
        while path and path[-1][0] == "user":
            path = path[:-1]
        key = tuple(path)
        if len(path) >= 2 and key not in seen:
            seen.add(key)
            paths.append((path, {}))
    if not paths:
        raise Skip("no_assistant_reply", "no path of the tree has an assistant reply")
    return numbered(base, paths, ctx)


def assemble(rows: Iterable[tuple[Any, Any]]) -> Iterator[tuple[Any, Any]]:
    """Group flat message rows (with ``parent_id``, without ``replies``) into trees; pass others through.

    Flat rows are held in memory until the end of the file (oasst1 has ~88k messages); each tree is
    yielded at the location of its root row, followed by the rows whose parent is missing, as errors.
    """
    flat: list[tuple[Any, dict[str, Any]]] = []
    for loc, row in rows:
        if isinstance(row, Mapping) and "parent_id" in row and "replies" not in row and "prompt" not in row:
            if not isinstance(row.get("message_id"), str):
                yield loc, RecordError("missing_field", "a message row needs a string message_id",
                                       field="message_id")
                continue
            flat.append((loc, {**row, "replies": []}))
        else:
            yield loc, row
    by_id = {row["message_id"]: row for _, row in flat}
    roots, orphans = [], []
    for loc, row in flat:
        parent = row.get("parent_id")
        if parent is None:
            roots.append((loc, row))
        elif parent in by_id:
            by_id[parent]["replies"].append(row)
        else:
            orphans.append((loc, row))
    for loc, row in roots:
        yield loc, {"message_tree_id": row.get("message_tree_id") or row["message_id"], "prompt": row}
    for loc, row in orphans:
        yield loc, RecordError("orphan_message", f"parent {row['parent_id']!r} is not in the file",
                               field="parent_id")


def detect(row: Any) -> bool:
    return isinstance(row, Mapping) and (
        ("prompt" in row and "message_tree_id" in row)
        or ("role" in row and "text" in row and ("replies" in row or "parent_id" in row))
    )


SOURCE = Source(
    name="oasst1",
    convert=convert,
    detect=detect,
    shape="message trees (message_tree_id, prompt{role, text, replies...}) or the flat message table",
    rule="every path from the root to an assistant leaf; deleted skipped; top_k replies by quality",
    hub="OpenAssistant/oasst1",
    defaults={"top_k": None, "skip_deleted": True, "lang": None, "paths": "study", "order": "quality"},
    choices={"paths": ("study", "cut"), "order": ("quality", "rank")},
    camels={"paths": "cut", "order": "rank"},
    assemble=assemble,
)
