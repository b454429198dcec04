"""TyDi QA GoldP (Clark et al., 2020): multilingual extractive QA, 1 shot per language, with or without the
passage (SPEC §4).

Files (``--data``, a folder holding them anywhere below it): ``tydiqa-goldp-v1.1-dev.json`` (the items) and
``tydiqa-goldp-v1.1-train.json`` (the shots), in SQuAD format: ``{"data": [{"paragraphs": [{"context",
"qas": [{"id", "question", "answers": [{"text", "answer_start"}]}]}]}]}``. The language of a question is
the prefix of its id before the first ``-`` (``"finnish--6473...-0"`` is Finnish), mapped to a code (ar,
bn, en, fi, id, ko, ru, sw, te). An id with another prefix is a RecordError naming the file and the
question; questions of languages not in ``languages`` are counted in ``skipped`` (``other_language``).
With no ``--data``, the same rows come from the hub (``google-research-datasets/tydiqa``, config
``secondary_task``, splits ``validation`` and ``train``; needs ``datasets`` and network; not tested here).

Items: per language, in the order of ``languages``, the dev questions of that language in file order, of
which ``n`` = 100 are drawn exactly as ``random.Random(42).sample(questions, 100)`` (a fresh generator per
language, keeping the sampled order) when the language has more than ``n``; ``n = 0`` keeps all. Ids are
the dataset's own qa ids. A language of ``languages`` with no dev question simply has no items (the
metrics' ``per_language`` and ``n_languages`` show which were scored). The shot of a language (``shots = 1``) is its first train question in file order;
``shots = 0`` uses none (then no train file is needed).

Prompt: a per-language instruction line, a blank line, the shot, a blank line, the question, each in the
language's own labels (table :data:`LANGUAGES`; the project's own translations of the English labels)::

    Answer the following question based on the information in the given passage.

    Passage: {shot passage}
    Question: {shot question}
    Answer: {shot's first gold answer}

    Passage: {passage}
    Question: {question}

then ``"\\nAnswer:"`` for plain prompts, where generation stops at a newline (``plain_stop``); chat models
get ``"Answer:"`` (in the language) as the assistant prefix and ``"\\n\\n"`` as a safety stop
(``chat_stop``). Greedy, at most 50 new tokens. The closed-book variant (``closed_book``) drops the
passage lines and uses the instruction "Answer the following question." (in the language).

Passages (the item's and the shot's) are cut at the end, on a word boundary (whitespace), to at most
``passage_tokens`` = 512 tokens. When the backend counts tokens, a passage prefix's tokens are those of a
bare user turn holding it minus those of an empty user turn (so BOS and template tokens do not count), and
the longest word prefix within the limit is found by bisection; a word's tokens may differ by one or two
at the cut from those in the full prompt. When the backend cannot count tokens, the passage is cut to
``passage_tokens`` whitespace-separated words (a rough stand-in: a word is often more than one token).
If the full prompt still does not fit the model's context (plus ``max_tokens``), the shot is dropped;
``request_extra`` records the ``shots`` kept.

Metric: SQuAD v1.1 scoring of the first non-empty line of the output (stripped): normalisation (lowercase,
ASCII punctuation removed, English articles a/an/the removed, whitespace collapsed), exact match and
bag-of-tokens F1, each the best over the gold answers. Punctuation of other scripts (Arabic "،", "؟") is
kept, as in the official script. ``f1`` and ``em`` are macro-averages over languages (the headline);
``f1_micro``/``em_micro`` are over items; ``per_language`` has each language's ``f1``, ``em`` and ``n``.
Scores are fractions in [0, 1] (the paper prints percentages). The 95% intervals (``f1_ci95``,
``em_ci95``) are stratified bootstraps: items are redrawn within each language and the macro-average is
recomputed (:func:`camels.evals.metrics.stratified_ci`), so unequal language sizes never push an interval outside [0, 1].
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from camels.core.errors import ConfigError, RecordError
from camels.core.io import read_json, sha256_file
from camels.core.requests import GenerateRequest, Request, Result
from camels.evals.metrics import accuracy, squad_em, squad_f1, stderr, stratified_ci
from camels.evals.task import (
    PLAIN,
    Item,
    RequestContext,
    Task,
    TaskData,
    cued_generation,
    find_one_file,
    generated_text,
    hub_dataset,
    hub_source,
    register_preset,
    register_task,
)


@dataclass(frozen=True, slots=True)
class Labels:
    """One language's prompt words: the instructions (with/without passage) and the three labels."""

    name: str
    instruction: str
    closed_instruction: str
    passage: str
    question: str
    answer: str


# code -> labels. English is the study's wording; the others are the project's own translations of it
# (not reviewed by native speakers).
LANGUAGES: dict[str, Labels] = {
    "ar": Labels("arabic", "أجب عن السؤال التالي بناءً على المعلومات الواردة في المقطع المعطى.",
                 "أجب عن السؤال التالي.", "المقطع:", "السؤال:", "الإجابة:"),
    "bn": Labels("bengali", "প্রদত্ত অনুচ্ছেদের তথ্যের ভিত্তিতে নিচের প্রশ্নের উত্তর দিন।",
                 "নিচের প্রশ্নের উত্তর দিন।", "অনুচ্ছেদ:", "প্রশ্ন:", "উত্তর:"),
    "en": Labels("english", "Answer the following question based on the information in the given passage.",
                 "Answer the following question.", "Passage:", "Question:", "Answer:"),
    "fi": Labels("finnish", "Vastaa seuraavaan kysymykseen annetun tekstikappaleen tietojen perusteella.",
                 "Vastaa seuraavaan kysymykseen.", "Kappale:", "Kysymys:", "Vastaus:"),
    "id": Labels("indonesian", "Jawablah pertanyaan berikut berdasarkan informasi dalam bagian teks yang diberikan.",
                 "Jawablah pertanyaan berikut.", "Bagian:", "Pertanyaan:", "Jawaban:"),
    "ko": Labels("korean", "주어진 지문의 정보를 바탕으로 다음 질문에 답하십시오.",
                 "다음 질문에 답하십시오.", "지문:", "질문:", "답변:"),
    "ru": Labels("russian", "Ответьте на следующий вопрос, опираясь на информацию из данного отрывка.",
                 "Ответьте на следующий вопрос.", "Отрывок:", "Вопрос:", "Ответ:"),
    "sw": Labels("swahili", "Jibu swali lifuatalo kwa kutumia taarifa zilizo katika kifungu ulichopewa.",
                 "Jibu swali lifuatalo.", "Kifungu:", "Swali:", "Jibu:"),
    "te": Labels("telugu", "ఇచ్చిన పేరాలోని సమాచారం ఆధారంగా కింది ప్రశ్నకు సమాధానం ఇవ్వండి.",
                 "కింది ప్రశ్నకు సమాధానం ఇవ్వండి.", "పేరా:", "ప్రశ్న:", "సమాధానం:"),
}
CODE_OF_NAME = {lab.name: code for code, lab in LANGUAGES.items()}
DEV_FILE = "tydiqa-goldp-v1.1-dev.json"
TRAIN_FILE = "tydiqa-goldp-v1.1-train.json"
HUB_PATH, HUB_CONFIG = "google-research-datasets/tydiqa", "secondary_task"


@dataclass(frozen=True)
class TydiQAConfig:
    closed_book: bool = field(default=False, metadata={"help": "no passage in the prompt (closed-book QA)"})
    languages: tuple[str, ...] = field(default=tuple(LANGUAGES), metadata={"help": "language codes evaluated"})
    n: int = field(default=100, metadata={"help": "dev questions sampled per language (0: all)"})
    seed: int = field(default=42, metadata={"help": "seed of each language's sample"})
    shots: int = field(default=1, metadata={"help": "train examples per language in the prompt (0 or 1)"})
    passage_tokens: int = field(default=512, metadata={"help": "passages cut to this many tokens (words "
                                                                "when the backend cannot count tokens)"})
    max_tokens: int = field(default=50, metadata={"help": "new tokens at most"})
    plain_stop: tuple[str, ...] = field(default=("\n",), metadata={"help": "stop strings for plain prompts"})
    chat_stop: tuple[str, ...] = field(default=("\n\n",), metadata={"help": "stop strings for chat"})
    bootstrap_seed: int = field(default=0, metadata={"help": "seed of the bootstrap confidence interval"})
    bootstrap_resamples: int = field(default=1000, metadata={"help": "bootstrap resamples (0: no interval)"})


def language_of(qa_id: str) -> str | None:
    """The language code of a GoldP question id (``"finnish--123-0"`` -> ``"fi"``), None if unknown."""
    return CODE_OF_NAME.get(qa_id.split("-", 1)[0].lower())


def squad_rows(obj: Any, where: str) -> list[dict[str, Any]]:
    """Flatten a SQuAD-format JSON object into ``{"id", "context", "question", "answers"}`` rows."""
    rows = []
    try:
        data = obj["data"]
        for a, article in enumerate(data):
            for p, para in enumerate(article["paragraphs"]):
                for q, qa in enumerate(para["qas"]):
                    fld = f"data[{a}].paragraphs[{p}].qas[{q}]"
                    answers = [x["text"] for x in qa.get("answers", [])]
                    if not isinstance(qa.get("id"), str) or not isinstance(qa.get("question"), str):
                        raise RecordError("bad_item", "a question needs string 'id' and 'question'", field=fld,
                                          file=where)
                    if not answers or not all(isinstance(t, str) for t in answers):
                        raise RecordError("bad_item", f"question {qa['id']} has no text answers", field=fld,
                                          file=where)
                    rows.append({"id": qa["id"], "context": para["context"], "question": qa["question"],
                                 "answers": answers})
    except (KeyError, TypeError) as e:
        raise RecordError("bad_json", f"not SQuAD format: missing or wrong {e}", field="data",
                          file=where) from None
    return rows


def hub_rows(split: str) -> tuple[list[dict[str, Any]], dict[str, str], str]:
    ds = hub_dataset(HUB_PATH, HUB_CONFIG, split)
    rows = [{"id": r["id"], "context": r["context"], "question": r["question"],
             "answers": list(r["answers"]["text"])} for r in ds]
    key, fp = hub_source(ds, HUB_PATH, HUB_CONFIG, split)
    return rows, {key: fp}, key


def read_rows(path: Path) -> list[dict[str, Any]]:
    return squad_rows(read_json(path), str(path))


_WORD = re.compile(r"\S+")


def cut_passage(text: str, limit: int, ctx: RequestContext) -> tuple[str, bool]:
    """The passage cut at its end, on a word boundary, to ``limit`` tokens (words without a counter)."""
    text = text.strip()
    ends = [m.end() for m in _WORD.finditer(text)]
    if ctx.count_tokens is None:
        return (text, False) if len(ends) <= limit else (text[: ends[limit - 1]] if limit else "", True)
    count = ctx.count_tokens
    base = count(GenerateRequest(messages=[("user", "")], max_tokens=1))

    def tokens(k: int) -> int:
        return count(GenerateRequest(messages=[("user", text[: ends[k - 1]] if k else "")], max_tokens=1)) - base

    if not ends or tokens(len(ends)) <= limit:
        return text, False
    lo, hi = 0, len(ends) - 1  # the answer k (words kept) is in [lo, hi]; tokens(lo) <= limit
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if tokens(mid) <= limit:
            lo = mid
        else:
            hi = mid - 1
    return (text[: ends[lo - 1]] if lo else ""), True


def first_line(text: str) -> str:
    """The first non-empty line of ``text``, stripped ("" when there is none)."""
    for line in text.strip().splitlines():
        if line.strip():
            return line.strip()
    return ""


@register_task
class TydiQA(Task):
    name = "tydiqa"
    version = "1"
    Config = TydiQAConfig
    primary_metric = "f1"
    data_dir = "tydiqa"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.shots: dict[str, dict[str, Any]] = {}

    def load(self, data_path: str | Path | None = None) -> TaskData:
        cfg = self.config
        unknown = [c for c in cfg.languages if c not in LANGUAGES]
        if unknown or not cfg.languages:
            raise ConfigError(f"tydiqa: unknown languages {unknown} (known: {', '.join(LANGUAGES)})")
        if cfg.shots not in (0, 1):
            raise ConfigError(f"tydiqa: shots must be 0 or 1, got {cfg.shots}")
        if data_path is None:
            dev, sources, dev_where = hub_rows("validation")
        else:
            dev_path = find_one_file(Path(data_path), DEV_FILE, "tydiqa")
            dev, sources, dev_where = read_rows(dev_path), {str(dev_path.resolve()): sha256_file(dev_path)}, \
                str(dev_path)
        by_lang = self._split(dev, dev_where)
        skipped = sum(len(v) for k, v in by_lang.items() if k not in cfg.languages)
        items = []
        for code in cfg.languages:
            rows = by_lang.get(code, [])
            if cfg.n and cfg.n < len(rows):
                rows = random.Random(cfg.seed).sample(rows, cfg.n)
            items += [Item(r["id"], {"language": code, **{k: r[k] for k in ("context", "question", "answers")}})
                      for r in rows]
        self.shots = {}
        if cfg.shots:
            if data_path is None:
                train, train_sources, train_where = hub_rows("train")
            else:
                train_path = find_one_file(Path(data_path), TRAIN_FILE, "tydiqa")
                train, train_where = read_rows(train_path), str(train_path)
                train_sources = {str(train_path.resolve()): sha256_file(train_path)}
            sources.update(train_sources)
            train_by_lang = self._split(train, train_where)
            for code in dict.fromkeys(it.data["language"] for it in items):
                if not train_by_lang.get(code):
                    raise ConfigError(f"tydiqa: no {LANGUAGES[code].name} question in {train_where} for the "
                                      "shot (or pass shots=0)")
                self.shots[code] = train_by_lang[code][0]
        return TaskData(items=items, sources=sources, skipped={"other_language": skipped} if skipped else {})

    @staticmethod
    def _split(rows: list[dict[str, Any]], where: str) -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = {}
        for r in rows:
            code = language_of(r["id"])
            if code is None:
                raise RecordError("unknown_language", f"question {r['id']!r}: its id does not start with one "
                                  f"of {', '.join(CODE_OF_NAME)}", field="id", file=where)
            out.setdefault(code, []).append(r)
        return out

    def _block(self, lab: Labels, context: str, question: str, ctx: RequestContext) -> tuple[str, bool]:
        q = f"{lab.question} {question.strip()}"
        if self.config.closed_book:
            return q, False
        passage, cut = cut_passage(context, self.config.passage_tokens, ctx)
        return f"{lab.passage} {passage}\n{q}", cut

    def build(self, item: Item, ctx: RequestContext, shots: int) -> tuple[GenerateRequest, bool]:
        """The request for ``item`` with ``shots`` (0 or 1) examples, and whether its passage was cut."""
        code = item.data["language"]
        lab = LANGUAGES[code]
        head = lab.closed_instruction if self.config.closed_book else lab.instruction
        parts = [head]
        if shots:
            if code not in self.shots:
                raise ConfigError("tydiqa: call load() before requests() (the shots come from the train file)")
            s = self.shots[code]
            block, _ = self._block(lab, s["context"], s["question"], ctx)
            parts.append(f"{block}\n{lab.answer} {s['answers'][0].strip()}")
        block, cut = self._block(lab, item.data["context"], item.data["question"], ctx)
        parts.append(block)
        req = cued_generation("\n\n".join(parts), lab.answer, ctx, max_tokens=self.config.max_tokens,
                              plain_stop=self.config.plain_stop, chat_stop=self.config.chat_stop)
        return req, cut

    def requests(self, item: Item, ctx: RequestContext = PLAIN) -> list[Request]:
        req, _ = self.build(item, ctx, self.config.shots)
        if self.config.shots and not ctx.fits(req, reserve=self.config.max_tokens):
            req, _ = self.build(item, ctx, 0)
        return [req]

    def request_extra(self, item: Item, requests: Sequence[Request]) -> dict[str, Any]:
        shot = self.shots.get(item.data["language"])
        if not self.config.shots or shot is None:
            return {"shots": 0}
        lab = LANGUAGES[item.data["language"]]
        kept = f"{lab.question} {shot['question'].strip()}\n{lab.answer} " in requests[0].messages[-1].content
        return {"shots": int(kept)}

    def score(self, item: Item, results: Sequence[Result], verdicts: Sequence[Any] = ()) -> dict[str, Any]:
        answer = first_line(generated_text(results, "TydiQA"))
        golds = item.data["answers"]
        return {"f1": squad_f1(answer, golds), "em": squad_em(answer, golds), "answer": answer,
                "language": item.data["language"]}

    def aggregate(self, items: Sequence[Item], scores: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        by_lang: dict[str, list[int]] = {}
        for i, it in enumerate(items):
            by_lang.setdefault(it.data["language"], []).append(i)
        order = [c for c in LANGUAGES if c in by_lang]
        out: dict[str, Any] = {}
        per = {c: {m: accuracy([float(scores[i][m]) for i in by_lang[c]]) for m in ("f1", "em")} | {
               "n": len(by_lang[c])} for c in order}
        n, t = len(scores), len(order)
        for m in ("f1", "em"):
            vals = [float(s[m]) for s in scores]
            out[m] = accuracy([per[c][m] for c in order])
            out[f"{m}_micro"] = accuracy(vals)
            out[f"{m}_stderr"] = stderr(vals)
            if self.config.bootstrap_resamples:
                groups = [[vals[i] for i in by_lang[c]] for c in order]
                out[f"{m}_ci95"] = list(stratified_ci(groups, n_resamples=self.config.bootstrap_resamples,
                                                      seed=self.config.bootstrap_seed))
        out.update({"n": n, "n_languages": t, "per_language": per})
        return out


register_preset("tydiqa_goldp", "tydiqa", closed_book=False)
register_preset("tydiqa_closed_book", "tydiqa", closed_book=True)
