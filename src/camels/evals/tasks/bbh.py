"""BIG-Bench Hard (Suzgun et al., 2022): 27 hard BIG-Bench tasks, 3-shot chain of thought or direct (SPEC §4).

Files (``--data``, a local copy of the BIG-Bench-Hard repository): ``bbh/<subtask>.json`` (``{"examples":
[{"input", "target"}, ...]}``) and the official prompts ``cot-prompts/<subtask>.txt``. Every ``*.json`` in
``bbh/`` is a subtask (``subtasks`` restricts them); each needs its prompt file. The hub has no copy of the
prompts, so BBH always reads a local folder.

Items: per subtask, ``n`` = 40 examples drawn exactly as ``random.Random(42).sample(examples, 40)``, a fresh
generator for each subtask, keeping the sampled order; subtasks in name order; ``n = 0`` keeps all. (The
2023 code drew all subtasks from one global stream in ``glob`` order, so its sample depended on the file
system; here a subtask's sample does not depend on which other subtasks are present.) Ids are
``<subtask>:<0-based index in that file's examples>`` and do not change with sampling.

Prompt: the prompt file without its header (the canary line and the ``-----`` line), i.e. the task
description and three ``"Q: ...\\nA: ..."`` exemplars separated by blank lines, then ``"\\n\\nQ: {input}"``.
With ``cot`` the exemplar answers are the official reasoning chains ("Let's think step by step. ... So the
answer is X."); without (the direct variant) each answer is the text after its last "So the answer is",
without the final period ("A: (B)"; the 2023 code kept the period, which scoring strips anyway). A plain
prompt ends with ``"\\nA:"`` inside the user text and generation stops at a blank line, since no exemplar
answer contains one (``plain_stop``). Chat models get ``"A:"`` as the assistant prefix, end their turn
themselves, and ``"\\n\\nQ:"`` is a safety stop (``chat_stop``). Greedy, at most 512 new tokens.

Metric: the answer is the text after the last "the answer is" (any case) up to the end of its line and
up to a period followed by a space (so "(B). Because ..." gives "(B)", while "3.5" stays whole), with a
trailing period removed; with no such phrase, the whole output (stripped, trailing period removed). It
matches the target ignoring case, punctuation and whitespace (``"(b)"``, ``"B"`` and ``"(B)."`` all match
``"(B)"``), except that a minus sign before a digit counts (``"219"`` is not ``"-219"``). A target made
only of punctuation (Dyck languages: ``"] ) }"``) is compared with whitespace removed but punctuation
kept, so that ``")"`` does not match ``"]"``. ``exact_match`` is the macro-average over subtasks (the
headline figure); ``exact_match_micro`` is over items (equal when every subtask has the same number of
items); ``per_task`` has each subtask's figure; ``no_answer_phrase`` counts outputs without "the answer
is". The 95% interval is a bootstrap of the macro-average, resampling items within each subtask
(:func:`camels.evals.metrics.stratified_ci`), so it stays inside [0, 1] whatever the subtask sizes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from camels.benchmarks.bbh import item_id, read_examples
from camels.core.errors import ConfigError, RecordError
from camels.core.io import read_text, sha256_file
from camels.core.requests import Request, Result
from camels.evals.metrics import accuracy, normalize_answer, stderr, stratified_ci
from camels.evals.task import (
    PLAIN,
    Item,
    RequestContext,
    Task,
    TaskData,
    cued_generation,
    generated_text,
    register_preset,
    register_task,
    sample_items,
)


@dataclass(frozen=True)
class BBHConfig:
    cot: bool = field(default=True, metadata={"help": "chain-of-thought exemplars (false: direct answers)"})
    n: int = field(default=40, metadata={"help": "examples sampled per subtask (0: all)"})
    seed: int = field(default=42, metadata={"help": "seed of each subtask's sample"})
    subtasks: tuple[str, ...] = field(default=(), metadata={"help": "subtasks to run (empty: every file)"})
    max_tokens: int = field(default=512, metadata={"help": "new tokens at most"})
    plain_stop: tuple[str, ...] = field(default=("\n\n",), metadata={"help": "stop strings for plain prompts"})
    chat_stop: tuple[str, ...] = field(default=("\n\nQ:",), metadata={"help": "stop strings for chat"})
    bootstrap_seed: int = field(default=0, metadata={"help": "seed of the bootstrap confidence interval"})
    bootstrap_resamples: int = field(default=1000, metadata={"help": "bootstrap resamples (0: no interval)"})


@dataclass(frozen=True)
class Exemplar:
    question: str  # the text after "Q: "
    cot: str  # the official answer, after "A: "
    short: str  # the text after its last "So the answer is", final period removed


@dataclass(frozen=True)
class PromptFile:
    description: str
    exemplars: tuple[Exemplar, ...]


_ANSWER_PHRASE = re.compile(r"the answer is", re.IGNORECASE)
_SENTENCE_END = re.compile(r"\.\s")
_MINUS = re.compile(r"-(?=\d)")


def parse_prompt(text: str, where: str = "<prompt>") -> PromptFile:
    """Split an official prompt file into its description and its ``Q:``/``A:`` exemplars."""
    text = text.replace("\r\n", "\n")
    if "\n-----\n" in text:
        text = text.split("\n-----\n", 1)[1]
    blocks = text.strip().split("\n\nQ: ")
    description, rest = blocks[0], blocks[1:]
    if description.startswith("Q: "):  # no description: the first block is an exemplar
        description, rest = "", [description[3:], *rest]
    exemplars = []
    for k, block in enumerate(rest):
        if "\nA: " not in block:
            raise RecordError("bad_prompt", f"exemplar {k + 1} has no '\\nA: ' line", field="prompt", file=where)
        question, answer = block.split("\nA: ", 1)
        pos = answer.rfind("So the answer is")
        if pos < 0:
            raise RecordError("bad_prompt", f"exemplar {k + 1} has no 'So the answer is'", field="prompt",
                              file=where)
        short = answer[pos + len("So the answer is"):].strip().removesuffix(".").strip()
        exemplars.append(Exemplar(question=question.strip(), cot=answer.strip(), short=short))
    if not exemplars:
        raise RecordError("bad_prompt", "no 'Q: ... A: ...' exemplars", field="prompt", file=where)
    return PromptFile(description=description.strip(), exemplars=tuple(exemplars))


def extract_answer(output: str) -> str:
    """The answer in a model output: after the last "the answer is", else the whole output (see above)."""
    matches = list(_ANSWER_PHRASE.finditer(output))
    if matches:
        text = output[matches[-1].end():].strip().split("\n", 1)[0]
        cut = _SENTENCE_END.search(text)
        if cut:
            text = text[: cut.start()]
    else:
        text = output
    text = text.strip()
    return text.removesuffix(".").strip()


def normalize(text: str) -> str:
    """Lowercase, ASCII punctuation dropped except a minus sign before a digit, whitespace collapsed."""
    text = _MINUS.sub("\x00", text)
    return normalize_answer(text).replace("\x00", "-")


def answers_match(answer: str, target: str) -> bool:
    """Case, punctuation and whitespace insensitive; punctuation-only targets keep their punctuation."""
    gold = normalize(target)
    if not gold:
        return "".join(answer.split()) == "".join(target.split())
    return normalize(answer) == gold


@register_task
class BBH(Task):
    name = "bbh"
    version = "1"
    Config = BBHConfig
    primary_metric = "exact_match"
    data_dir = "bbh"

    def __init__(self, config: Any = None, *, label: str | None = None, **options: Any) -> None:
        super().__init__(config, label=label, **options)
        self._prompts: dict[str, PromptFile] = {}

    def resolve_data_path(self, data_path: str | Path | None) -> Path | None:
        """The repository copy: the folder holding ``cot-prompts/``, given it, its parent, or its ``bbh/``."""
        root = super().resolve_data_path(data_path)
        if root is None:
            return None
        for cand in (root, root.parent, root / "bbh"):
            if (cand / "cot-prompts").is_dir():
                return cand
        raise ConfigError(f"bbh: no cot-prompts/ folder in, above or below {root}")

    def load(self, data_path: str | Path | None = None) -> TaskData:
        if data_path is None:
            raise ConfigError("bbh: the official prompt files are not on the hub; pass --data with a local copy "
                              "of the BIG-Bench-Hard repository (bbh/*.json and cot-prompts/*.txt)")
        root = self.resolve_data_path(data_path)
        assert root is not None
        task_dir = root / "bbh" if (root / "bbh").is_dir() else root
        prompt_dir = root / "cot-prompts"
        found = {p.stem: p for p in sorted(task_dir.glob("*.json"))}
        if not found:
            raise ConfigError(f"bbh: no subtask files (*.json) in {task_dir}")
        names = list(self.config.subtasks) or sorted(found)
        unknown = [s for s in names if s not in found]
        if unknown:
            raise ConfigError(f"bbh: no file for subtask(s) {unknown} in {task_dir} (found: {sorted(found)})")
        items: list[Item] = []
        unsampled: list[str] = []
        sources: dict[str, str] = {}
        self._prompts = {}
        for sub in sorted(names):
            path, ppath = found[sub], prompt_dir / f"{sub}.txt"
            if not ppath.is_file():
                raise ConfigError(f"bbh: subtask {sub} has no prompt file {ppath}")
            self._prompts[sub] = parse_prompt(read_text(ppath), str(ppath))
            sources[str(path.resolve())] = sha256_file(path)
            sources[str(ppath.resolve())] = sha256_file(ppath)
            examples = read_examples(path)
            sub_items = []
            for i, ex in enumerate(examples):
                if not (isinstance(ex, dict) and isinstance(ex.get("input"), str)
                        and isinstance(ex.get("target"), str)):
                    raise RecordError("bad_item", f"example {i} needs string 'input' and 'target'",
                                      field=f"examples[{i}]", file=str(path))
                sub_items.append(Item(item_id(sub, i), {"task": sub, "input": ex["input"], "target": ex["target"]}))
            sub_items, left = sample_items(sub_items, self.config.n, self.config.seed)
            items.extend(sub_items)
            unsampled.extend(left)
        return TaskData(items=items, sources=sources, unsampled=unsampled)

    def prefix(self, subtask: str) -> str:
        """Description and exemplars of ``subtask``, ending in a blank line (needs :meth:`load` first)."""
        if subtask not in self._prompts:
            raise ConfigError(f"bbh: prompt of subtask {subtask!r} not loaded (call load() first)")
        prompt = self._prompts[subtask]
        blocks = [prompt.description] if prompt.description else []
        for e in prompt.exemplars:
            blocks.append(f"Q: {e.question}\nA: {e.cot if self.config.cot else e.short}")
        return "\n\n".join(blocks) + "\n\n"

    def requests(self, item: Item, ctx: RequestContext = PLAIN) -> list[Request]:
        text = self.prefix(item.data["task"]) + "Q: " + item.data["input"].strip()
        return [cued_generation(text, "A:", ctx, max_tokens=self.config.max_tokens,
                                plain_stop=self.config.plain_stop, chat_stop=self.config.chat_stop)]

    def score(self, item: Item, results: Sequence[Result], verdicts: Sequence[Any] = ()) -> dict[str, Any]:
        text = generated_text(results, "BBH")
        extracted = extract_answer(text)
        return {"exact_match": float(answers_match(extracted, item.data["target"])), "extracted": extracted,
                "gold": item.data["target"], "phrase": bool(_ANSWER_PHRASE.search(text))}

    def aggregate(self, items: Sequence[Item], scores: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        by_task: dict[str, list[float]] = {}
        for it, s in zip(items, scores, strict=True):
            by_task.setdefault(it.data["task"], []).append(float(s["exact_match"]))
        per_task = {t: accuracy(v) for t, v in sorted(by_task.items())}
        em = [float(s["exact_match"]) for s in scores]
        macro = accuracy(list(per_task.values()))
        out: dict[str, Any] = {
            "exact_match": macro, "exact_match_micro": accuracy(em), "exact_match_stderr": stderr(em),
            "n": len(em), "n_tasks": len(per_task), "per_task": per_task,
            "no_answer_phrase": sum(1 for s in scores if not s.get("phrase", True)),
        }
        if self.config.bootstrap_resamples:
            # resampled within each subtask, so every resample is a macro-average too (subtasks may differ
            # in size, e.g. with n=0)
            lo, hi = stratified_ci([by_task[t] for t in sorted(by_task)], n_resamples=self.config.bootstrap_resamples,
                                   seed=self.config.bootstrap_seed)
            out["exact_match_ci95"] = [lo, hi]
        return out


register_preset("bbh_cot", "bbh", cot=True)
register_preset("bbh_direct", "bbh", cot=False)
