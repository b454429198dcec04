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

Sampling, as the study's code draws it: one generator, ``random.Random(seed)`` (``seed`` = 42), walks the
languages of the dev file in the order of their names (arabic, bengali, english, finnish, indonesian,
korean, russian, swahili, telugu); for each language with more than ``n`` = 100 dev questions it draws
``sample(questions in file order, n)`` (kept in the sampled order; a language with at most ``n`` keeps all,
drawing nothing). Then, with ``shots = 1``, the same generator draws each language's shot in the same
order: ``sample(its train questions in file order, 1)``. Every language of the dev file takes part in the
draws, whatever ``languages`` keeps, so a language's items and shot do not depend on that option. Items
come per language in the order of ``languages``; ``n = 0`` keeps all. Ids are the dataset's own qa ids.
A language of ``languages`` with no dev question simply has no items (the metrics' ``per_language`` and
``n_languages`` show which were scored). ``shots = 0`` uses no shot (then no train file is needed).

Prompt: a per-language instruction line, a blank line, the shot, a blank line, the question, each in the
language's own labels (table :data:`LANGUAGES`: the study's strings, part of the benchmark protocol;
questions, passages and answers are used as the files give them)::

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

from camels.benchmarks.tydiqa import DEV_FILE, TRAIN_FILE, read_squad, squad_rows  # noqa: F401
from camels.core.errors import ConfigError, RecordError
from camels.core.io import sha256_file
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


# code -> labels: the study's strings (its evaluation code, allenai/open-instruct eval/tydiqa, 2023),
# unchanged: like BBH's prompt files they are part of the benchmark protocol.
LANGUAGES: dict[str, Labels] = {
    "ar": Labels("arabic", "أجب على السؤال التالي بناءً على المعلومات في المقطع المعطى.",
                 "أجب على السؤال التالي.", "المقطع:", "السؤال:", "الإجابة:"),
    "bn": Labels("bengali", "প্রদত্ত অধ্যায়ের তথ্যের উপর ভিত্তি করে নিম্নলিখিত প্রশ্নের উত্তর দিন।",
                 "নিম্নলিখিত প্রশ্নের উত্তর দিন।", "অধ্যায়:", "প্রশ্ন:", "উত্তর:"),
    "en": Labels("english", "Answer the following question based on the information in the given passage.",
                 "Answer the following question.", "Passage:", "Question:", "Answer:"),
    "fi": Labels("finnish", "Vastaa seuraavaan kysymykseen annetun kappaleen tiedon perusteella.",
                 "Vastaa seuraavaan kysymykseen.", "Kappale:", "Kysymys:", "Vastaus:"),
    "id": Labels("indonesian", "Jawab pertanyaan berikut berdasarkan informasi di bagian yang diberikan.",
                 "Jawab pertanyaan berikut.", "Bagian:", "Pertanyaan:", "Jawaban:"),
    "ko": Labels("korean", "주어진 문단의 정보에 기반하여 다음 질문에 답하십시오.",
                 "다음 질문에 답하십시오.", "문단:", "질문:", "답변:"),
    "ru": Labels("russian", "Ответьте на следующий вопрос на основе информации в данном отрывке.",
                 "Ответьте на следующий вопрос.", "Отрывок:", "Вопрос:", "Ответ:"),
    "sw": Labels("swahili", "Jibu swali lifuatalo kulingana na habari kwenye kifungu kilichotolewa.",
                 "Jibu swali lifuatalo.", "Kifungu:", "Swali:", "Jibu:"),
    "te": Labels("telugu", "ఇచ్చిన పేరాలోని సమాచారం ఆధారంగా కింది ప్రశ్నకు సమాధానం ఇవ్వండి.",
                 "క్రింది ప్రశ్నకు సమాధానం ఇవ్వండి.", "పేరా:", "ప్రశ్న:", "సమాధానం:"),
}
CODE_OF_NAME = {lab.name: code for code, lab in LANGUAGES.items()}
HUB_PATH, HUB_CONFIG = "google-research-datasets/tydiqa", "secondary_task"


@dataclass(frozen=True)
class TydiQAConfig:
    closed_book: bool = field(default=False, metadata={"help": "no passage in the prompt (closed-book QA)"})
    languages: tuple[str, ...] = field(default=tuple(LANGUAGES), metadata={"help": "language codes evaluated"})
    n: int = field(default=100, metadata={"help": "dev questions sampled per language (0: all)"})
    seed: int = field(default=42, metadata={"help": "seed of the one stream of draws (dev samples, then shots)"})
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


def hub_rows(split: str) -> tuple[list[dict[str, Any]], dict[str, str], str]:
    ds = hub_dataset(HUB_PATH, HUB_CONFIG, split)
    rows = [{"id": r["id"], "context": r["context"], "question": r["question"],
             "answers": list(r["answers"]["text"])} for r in ds]
    key, fp = hub_source(ds, HUB_PATH, HUB_CONFIG, split)
    return rows, {key: fp}, key


_WORD = re.compile(r"\S+")


def cut_passage(text: str, limit: int, ctx: RequestContext) -> tuple[str, bool]:
    """The passage cut at its end, on a word boundary, to ``limit`` tokens (words without a counter); a
    passage within the limit is returned as it is."""
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
    version = "2"
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
            dev, sources, dev_where = read_squad(dev_path), {str(dev_path.resolve()): sha256_file(dev_path)}, \
                str(dev_path)
        by_lang = self._split(dev, dev_where)
        skipped = sum(len(v) for k, v in by_lang.items() if k not in cfg.languages)
        stream = random.Random(cfg.seed)  # one stream over the languages in the study's order
        order = sorted(by_lang, key=lambda c: LANGUAGES[c].name)
        sampled: dict[str, list[dict[str, Any]]] = {}
        unsampled: list[str] = []
        for code in order:
            rows = by_lang[code]
            if cfg.n and cfg.n < len(rows):
                picked = stream.sample(rows, cfg.n)
                chosen = {id(r) for r in picked}
                if code in cfg.languages:
                    unsampled += [r["id"] for r in rows if id(r) not in chosen]
                rows = picked
            sampled[code] = rows
        items = []
        for code in cfg.languages:
            items += [Item(r["id"], {"language": code, **{k: r[k] for k in ("context", "question", "answers")}})
                      for r in sampled.get(code, [])]
        self.shots = {}
        if cfg.shots:
            if data_path is None:
                train, train_sources, train_where = hub_rows("train")
            else:
                train_path = find_one_file(Path(data_path), TRAIN_FILE, "tydiqa")
                train, train_where = read_squad(train_path), str(train_path)
                train_sources = {str(train_path.resolve()): sha256_file(train_path)}
            sources.update(train_sources)
            train_by_lang = self._split(train, train_where)
            wanted = {it.data["language"] for it in items}
            for code in order:  # the study draws every dev language's shot, in the same stream
                if not train_by_lang.get(code):
                    if code in wanted:
                        raise ConfigError(f"tydiqa: no {LANGUAGES[code].name} question in {train_where} for "
                                          "the shot (or pass shots=0)")
                    continue
                (shot,) = stream.sample(train_by_lang[code], 1)
                if code in wanted:
                    self.shots[code] = shot
        return TaskData(items=items, sources=sources, skipped={"other_language": skipped} if skipped else {},
                        unsampled=unsampled)

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
        q = f"{lab.question} {question}"
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
            parts.append(f"{block}\n{lab.answer} {s['answers'][0]}")
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
        kept = f"{lab.question} {shot['question']}\n{lab.answer} " in requests[0].messages[-1].content
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
