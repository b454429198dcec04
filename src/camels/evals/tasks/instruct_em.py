"""Exact match on your own instructions: a JSONL file of ``{id?, instruction, input?, output, group?}``.

The smallest useful benchmark: each line is an instruction with an optional input and the one right
answer. The prompt is ``instruction`` (plus ``"\\n\\n" + input`` when there is one) as a single user turn,
rendered by the model's chat format; greedy decoding, ``max_tokens`` new tokens. A plain (base) model
stops at a blank line. The score is exact match after stripping surrounding whitespace (``normalize=true``
compares normalised forms instead: lowercase, no ASCII punctuation, whitespace collapsed), micro-averaged, and
per ``group`` (the field named by ``group_field``: e.g. the skill of ``camels demo``'s held-out set).

Item ids are the line's ``id`` field when present, else ``<file stem>:<0-based line index>``.
``--data`` is the JSONL file itself (or a folder holding exactly one ``*.jsonl``); there is no hub copy.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from camels.core.errors import ConfigError, RecordError
from camels.core.io import iter_jsonl, sha256_file
from camels.core.requests import GenerateRequest, Generation, Request, Result
from camels.evals.metrics import accuracy, exact_match, stderr
from camels.evals.task import PLAIN, Item, RequestContext, Task, TaskData, register_task


@dataclass(frozen=True)
class InstructEMConfig:
    max_tokens: int = field(default=64, metadata={"help": "new tokens at most"})
    normalize: bool = field(default=False, metadata={"help": "compare lowercased answers without punctuation"})
    group_field: str = field(default="group", metadata={"help": "field whose value groups the metrics"})
    plain_stop: tuple[str, ...] = field(default=("\n\n",), metadata={"help": "stop strings for plain prompts"})


def _text(obj: Mapping[str, Any], key: str, where: str, line: int, required: bool = True) -> str:
    value = obj.get(key, "" if not required else None)
    if value is None:
        raise RecordError("missing_field", f"no {key!r}", field=key, file=where, line=line)
    if not isinstance(value, str):
        raise RecordError("bad_type", f"{key!r} must be a string, got {type(value).__name__}", field=key,
                          file=where, line=line)
    return value


@register_task
class InstructEM(Task):
    name = "instruct_em"
    version = "1"
    Config = InstructEMConfig
    primary_metric = "exact_match"

    def load(self, data_path: str | Path | None = None) -> TaskData:
        if data_path is None:
            raise ConfigError("instruct_em: pass the JSONL file with --data PATH (there is no hub copy)")
        path = Path(data_path)
        if path.is_dir():
            found = sorted(path.glob("*.jsonl"))
            if len(found) != 1:
                raise ConfigError(f"instruct_em: expected one *.jsonl in {path}, found {len(found)}")
            path = found[0]
        items: list[Item] = []
        for i, (line, obj) in enumerate(iter_jsonl(path)):
            if not isinstance(obj, dict):
                raise RecordError("not_an_object", "each line must be a JSON object", file=str(path), line=line)
            data = {
                "instruction": _text(obj, "instruction", str(path), line),
                "input": _text(obj, "input", str(path), line, required=False),
                "output": _text(obj, "output", str(path), line),
                "group": str(obj.get(self.config.group_field, "")),
            }
            item_id = obj.get("id")
            items.append(Item(str(item_id) if item_id is not None else f"{path.stem}:{i}", data))
        return TaskData(items=items, sources={str(path.resolve()): sha256_file(path)})

    def requests(self, item: Item, ctx: RequestContext = PLAIN) -> list[Request]:
        text = item.data["instruction"].strip()
        if item.data["input"].strip():
            text += "\n\n" + item.data["input"].strip()
        stop = () if ctx.chat else self.config.plain_stop
        return [GenerateRequest(messages=[("user", text)], max_tokens=self.config.max_tokens, stop=stop)]

    def score(self, item: Item, results: Sequence[Result], verdicts: Sequence[Any] = ()) -> dict[str, Any]:
        res = results[0]
        if not isinstance(res, Generation):
            raise TypeError(f"instruct_em scores generations, not {type(res).__name__}")
        text = res.texts[0] if res.texts else ""
        gold = item.data["output"]
        hit = exact_match(text, gold) if self.config.normalize else text.strip() == gold.strip()
        return {"exact_match": float(hit), "group": item.data["group"]}

    def aggregate(self, items: Sequence[Item], scores: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        em = [float(s["exact_match"]) for s in scores]
        groups: dict[str, list[float]] = defaultdict(list)
        for s in scores:
            if s["group"]:
                groups[s["group"]].append(float(s["exact_match"]))
        out: dict[str, Any] = {"exact_match": accuracy(em), "exact_match_stderr": stderr(em), "n": len(em)}
        if groups:
            out["per_group"] = {g: {"exact_match": accuracy(v), "n": len(v)} for g, v in sorted(groups.items())}
        return out
