"""Decontamination: n-gram overlap of training conversations with the evaluation sets.

Text is normalised (Unicode NFKC, lower case, every run of non-word characters is a separator) and cut into
word n-grams (default ``n = 13``, the customary choice for instruction data). Each n-gram is reduced to a
64-bit hash: each word gets a BLAKE2b hash (cached), and an n-gram is the hash of the tuple of its
words' hashes, computed in C over ``zip`` of shifted lists. One benchmark's index is a Python ``set`` of
ints (about 100 bytes an n-gram; the eight benchmarks of the study hold about 800,000 13-grams, ~80 MB)
rather than a set of word tuples. Hashing a tuple of ints does not depend on ``PYTHONHASHSEED`` (only
``str``/``bytes`` hashing is randomised), so results are the same in every process.

A training conversation is *contaminated* by a benchmark when at least ``min_matches`` of its n-grams
(default 1) are in that benchmark's index and they make up at least ``threshold`` of its n-grams (default
0: any one match is enough). By default only the user turns (and a system turn) are checked, because
prompts are where test questions leak; ``turns="all"`` checks assistant turns too.

Benchmark readers are evaluation's own (:mod:`camels.benchmarks`, see :data:`READERS`): the raw files of
each evaluation as published, one text segment per field that a model sees at evaluation time (n-grams
never span two segments), each item with the id evaluation gives it. The report names the benchmark
items a conversation matched (``contaminated_items`` per benchmark, ``items`` per example) by those ids,
the ones ``predictions.jsonl`` shows.

Honest limits: a benchmark item shorter than ``n`` words contributes no n-gram and cannot be detected (its
count is reported as ``short_items``; lower ``n`` to reach them, e.g. BBH's boolean expressions); text that
was paraphrased or translated is not found; a 13-gram that is common boilerplate could flag an innocent
conversation (the report lists example n-grams so you can judge).
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from camels.benchmarks.texts import FOLDERS, READERS
from camels.core.chat import Conversation
from camels.core.errors import ConfigError
from camels.core.io import publish_together, sha256_file, write_json
from camels.data.manifest import Manifest, manifest_path
from camels.data.records import format_table, iter_conversations

_WORD = re.compile(r"\w+")
__all__ = ["FOLDERS", "READERS", "build_index", "decontaminate", "resolve_benchmarks"]


# -- normalisation and hashing ---------------------------------------------------------------------------


def normalize_words(text: str) -> list[str]:
    """Lower-cased words of ``text`` (NFKC; punctuation and whitespace separate words).

    >>> normalize_words("The  answer's: 42!")
    ['the', 'answer', 's', '42']
    """
    return _WORD.findall(unicodedata.normalize("NFKC", text).lower())


class NgramHasher:
    """Word n-grams -> 64-bit ints. One instance caches word hashes (bounded) for speed."""

    def __init__(self, n: int = 13, cache_size: int = 1_000_000) -> None:
        if n < 1:
            raise ConfigError(f"n-gram size must be at least 1, got {n}")
        self.n = n
        self._cache: dict[str, int] = {}
        self._cache_size = cache_size

    def word(self, w: str) -> int:
        h = self._cache.get(w)
        if h is None:
            h = int.from_bytes(hashlib.blake2b(w.encode("utf-8"), digest_size=8).digest(), "little")
            if len(self._cache) >= self._cache_size:
                self._cache.clear()
            self._cache[w] = h
        return h

    def hashes(self, words: Sequence[str]) -> list[int]:
        """Hash of every n-gram of ``words`` in order (empty when fewer than ``n`` words)."""
        n = len(words)
        if n < self.n:
            return []
        get, word = self._cache.get, self.word
        ws = [get(w) or word(w) for w in words]  # a cached hash of 0 is recomputed: still correct
        # zip of n shifted views yields each n-gram as a tuple of word hashes; hash() of an int tuple is
        # deterministic across processes
        return list(map(hash, zip(*[ws[k:] for k in range(self.n)])))

    def text_hashes(self, text: str) -> list[int]:
        return self.hashes(normalize_words(text))


# -- benchmark readers: the ones evaluation uses (camels.benchmarks), so ids agree ---------------------


def resolve_benchmarks(specs: Iterable[str]) -> dict[str, Path]:
    """``NAME=PATH`` (NAME one of :data:`READERS`) or a folder holding benchmark sub-folders."""
    out: dict[str, Path] = {}
    for spec in specs:
        name, sep, raw = spec.partition("=")
        if sep:
            name = name.strip().lower().replace("-", "_")
            if name not in READERS:
                raise ConfigError(f"--benchmarks {spec}: unknown benchmark {name!r} "
                                  f"(known: {', '.join(sorted(READERS))})")
            path = Path(raw)
            if not path.exists():
                raise ConfigError(f"--benchmarks {spec}: {path} does not exist")
            out[name] = path
            continue
        root = Path(spec)
        if not root.is_dir():
            raise ConfigError(f"--benchmarks {spec}: expected NAME=PATH or a folder of benchmark folders")
        found = {b: root / d for b, ds in FOLDERS.items() for d in ds if (root / d).is_dir()}
        if not found:
            raise ConfigError(f"--benchmarks {spec}: no benchmark folder inside "
                              f"(looked for {', '.join(sorted(FOLDERS))})")
        for b, p in found.items():
            out.setdefault(b, p)
    return dict(sorted(out.items()))


# -- the index -------------------------------------------------------------------------------------------


@dataclass
class BenchmarkIndex:
    """The hashed n-grams of one benchmark, and what went into it."""

    name: str
    path: str
    ngrams: set[int] = field(default_factory=set)
    items: int = 0
    short_items: int = 0
    files: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {"path": self.path, "items": self.items, "ngrams": len(self.ngrams),
                "short_items": self.short_items, "files": self.files}


def build_index(name: str, path: str | Path, hasher: NgramHasher) -> BenchmarkIndex:
    """Read a benchmark's raw files with its reader and collect the n-gram hashes of every item."""
    if name not in READERS:
        raise ConfigError(f"unknown benchmark {name!r} (known: {', '.join(sorted(READERS))})")
    path = Path(path)
    idx = BenchmarkIndex(name, str(path))
    files: dict[Path, int] = {}
    for f, _item_id, segments in READERS[name](path):
        idx.items += 1
        files[f] = files.get(f, 0) + 1
        got = False
        for seg in segments:
            hs = hasher.text_hashes(seg)
            if hs:
                got = True
                idx.ngrams.update(hs)
        if not got:
            idx.short_items += 1
    if idx.items == 0:
        raise ConfigError(f"benchmark {name}: no items found under {path}")
    idx.files = [{"path": str(f), "sha256": sha256_file(f), "items": k} for f, k in sorted(files.items())]
    return idx


# -- checking conversations ------------------------------------------------------------------------------


@dataclass
class Hit:
    benchmark: str
    matches: int
    total: int
    ngram: str  # the first matched n-gram, as training text words
    common: frozenset[int] = frozenset()  # the matched n-gram hashes (to name the benchmark items)

    @property
    def ratio(self) -> float:
        return self.matches / self.total if self.total else 0.0


@dataclass
class Decontaminator:
    """Checks conversations against a set of benchmark indexes."""

    indexes: dict[str, BenchmarkIndex]
    hasher: NgramHasher
    threshold: float = 0.0
    min_matches: int = 1
    turns: str = "user"  # "user" (user and system turns) or "all"

    def __post_init__(self) -> None:
        if self.turns not in ("user", "all"):
            raise ConfigError(f"turns must be 'user' or 'all', got {self.turns!r}")
        if not 0.0 <= self.threshold <= 1.0:
            raise ConfigError(f"threshold must be between 0 and 1, got {self.threshold}")
        if self.min_matches < 1:
            raise ConfigError(f"min_matches must be at least 1, got {self.min_matches}")

    def check(self, conv: Conversation) -> list[Hit]:
        """The benchmarks that contaminate ``conv`` (empty list when clean), in benchmark-name order."""
        words_per_turn = [normalize_words(m.content) for m in conv.messages
                          if self.turns == "all" or m.role != "assistant"]
        hashes: list[int] = []
        for words in words_per_turn:
            hashes.extend(self.hasher.hashes(words))
        if not hashes:
            return []
        uniq = set(hashes)
        hits = []
        for name, idx in self.indexes.items():
            common = uniq & idx.ngrams if len(uniq) < len(idx.ngrams) else idx.ngrams & uniq
            if not common:
                continue
            matches = sum(1 for h in hashes if h in common)
            if matches < self.min_matches or matches / len(hashes) < self.threshold:
                continue
            hits.append(Hit(name, matches, len(hashes), self._first_match(words_per_turn, common),
                            frozenset(common)))
        return hits

    def _first_match(self, words_per_turn: list[list[str]], common: set[int]) -> str:
        """The words of the first matching n-gram (for the report's examples)."""
        for words in words_per_turn:
            for i, h in enumerate(self.hasher.hashes(words)):
                if h in common:
                    return " ".join(words[i : i + self.hasher.n])
        return ""


@dataclass
class DecontamReport:
    """Counts per source and per benchmark, with example ids."""

    n: int
    threshold: float
    min_matches: int
    turns: str
    max_examples: int = 5
    benchmarks: dict[str, dict[str, Any]] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)
    conversations: Counter = field(default_factory=Counter)  # per source
    contaminated: Counter = field(default_factory=Counter)  # per source, any benchmark
    by_benchmark: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))  # bench->source
    examples: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    matched: dict[str, set[int]] = field(default_factory=lambda: defaultdict(set))  # bench -> n-gram hashes
    items: dict[str, list[str]] = field(default_factory=dict)  # bench -> contaminated item ids (resolved)
    _example_hashes: dict[int, frozenset[int]] = field(default_factory=dict)

    def add(self, conv: Conversation, hits: Sequence[Hit]) -> None:
        self.conversations[conv.dataset] += 1
        if not hits:
            return
        self.contaminated[conv.dataset] += 1
        for h in hits:
            self.by_benchmark[h.benchmark][conv.dataset] += 1
            self.matched[h.benchmark].update(h.common)
            ex = self.examples[h.benchmark]
            if len(ex) < self.max_examples:
                ex.append({"id": conv.id, "source": conv.dataset, "matches": h.matches, "ngrams": h.total,
                           "ratio": round(h.ratio, 4), "ngram": h.ngram, "items": []})
                self._example_hashes[id(ex[-1])] = h.common

    def resolve_items(self, indexes: Mapping[str, BenchmarkIndex], hasher: NgramHasher) -> None:
        """Name the benchmark items behind the matched n-grams: one more pass over each benchmark that
        matched (cheap: benchmarks are small), filling ``items`` and each example's ``items``."""
        for name, matched in self.matched.items():
            if not matched:
                continue
            idx = indexes[name]
            hit_items: list[tuple[str, set[int]]] = []
            for _f, item_id, segments in READERS[name](Path(idx.path)):
                hs = {h for seg in segments for h in hasher.text_hashes(seg)} & matched
                if hs:
                    hit_items.append((item_id, hs))
            self.items[name] = sorted({i for i, _ in hit_items})
            for ex in self.examples.get(name, []):
                mine = self._example_hashes.get(id(ex), frozenset())
                ex["items"] = sorted({i for i, hs in hit_items if hs & mine})

    def to_dict(self) -> dict[str, Any]:
        total = sum(self.conversations.values())
        per_bench = {}
        for b in self.benchmarks:
            by_src = self.by_benchmark.get(b, Counter())
            n = sum(by_src.values())
            per_bench[b] = {
                "contaminated": n,
                "contaminated_items": self.items.get(b, []),
                "rate": _rate(n, total),
                "by_source": dict(sorted(by_src.items())),
                "examples": self.examples.get(b, []),
                "index": self.benchmarks[b],
            }
        per_source = {}
        for s in sorted(self.conversations):
            conv = self.conversations[s]
            per_source[s] = {
                "conversations": conv,
                "contaminated": self.contaminated[s],
                "rate": _rate(self.contaminated[s], conv),
                "by_benchmark": {b: self.by_benchmark[b][s] for b in self.benchmarks if self.by_benchmark[b][s]},
            }
        any_n = sum(self.contaminated.values())
        return {
            "settings": {"n": self.n, "threshold": self.threshold, "min_matches": self.min_matches,
                         "turns": self.turns},
            "conversations": total,
            "skipped": self.skipped,
            "contaminated": any_n,
            "rate": _rate(any_n, total),
            "benchmarks": per_bench,
            "sources": per_source,
        }

    def table(self) -> str:
        """An aligned text table: one row per source, one column per benchmark (contaminated counts)."""
        benches = list(self.benchmarks)
        header = ["source", "conversations", *benches, "any", "rate"]
        rows = []
        for s in sorted(self.conversations):
            rows.append([s, str(self.conversations[s]), *(str(self.by_benchmark[b][s]) for b in benches),
                         str(self.contaminated[s]), f"{100 * _rate(self.contaminated[s], self.conversations[s]):.2f}%"])
        total = sum(self.conversations.values())
        any_n = sum(self.contaminated.values())
        rows.append(["all", str(total), *(str(sum(self.by_benchmark[b].values())) for b in benches),
                     str(any_n), f"{100 * _rate(any_n, total):.2f}%"])
        return format_table(header, rows)


def _rate(n: int, total: int) -> float:
    return round(n / total, 6) if total else 0.0


# -- the whole run ---------------------------------------------------------------------------------------


@dataclass
class DecontamResult:
    report: DecontamReport
    written: int | None = None
    manifest: Path | None = None


def decontaminate(
    train: str | Path,
    benchmarks: Mapping[str, str | Path],
    *,
    n: int = 13,
    threshold: float = 0.0,
    min_matches: int = 1,
    turns: str = "user",
    output: str | Path | None = None,
    report_path: str | Path | None = None,
    lenient: bool = False,
    max_examples: int = 5,
    show_progress: bool = True,
) -> DecontamResult:
    """Check every conversation of ``train`` against the benchmarks; with ``output``, also write the
    clean conversations there, with a manifest (``kind="decontaminate"``) in which each dropped
    conversation is counted once, under ``contaminated:<benchmark>`` of the benchmark with the most
    matching n-grams (ties: the first by name). ``report_path`` receives the JSON report, published
    together with the clean output and its manifest."""
    if not benchmarks:
        raise ConfigError("no benchmark given: use --benchmarks NAME=PATH or a folder of benchmark folders")
    train = Path(train)
    if not train.is_file():
        raise ConfigError(f"training file {train} does not exist")
    hasher = NgramHasher(n)
    indexes = {}
    for name in sorted(benchmarks):
        indexes[name] = build_index(name, benchmarks[name], hasher)
    checker = Decontaminator(indexes, hasher, threshold, min_matches, turns)
    report = DecontamReport(n, threshold, min_matches, turns, max_examples)
    report.benchmarks = {name: idx.summary() for name, idx in indexes.items()}

    manifest = Manifest(kind="decontaminate")
    skipped: Counter = Counter()
    written = 0
    convs = iter_conversations(train, lenient=lenient, skipped=skipped, show_progress=show_progress,
                               desc="decontaminate")

    def run(out: Any | None) -> None:
        nonlocal written
        for _, conv in convs:
            manifest.records_out += 1
            hits = checker.check(conv)
            report.add(conv, hits)
            if hits:
                worst = max(hits, key=lambda h: h.matches)  # the first of equals: hits come in name order
                manifest.drop(f"contaminated:{worst.benchmark}", conv.dataset)
                continue
            if out is not None:
                out.write(conv.to_json())
                out.write("\n")
            written += 1
            manifest.per_source[conv.dataset] += 1
        manifest.skipped.update(skipped)
        manifest.records_in = manifest.records_out + sum(skipped.values())
        report.skipped = dict(sorted(skipped.items()))

    if output is None:
        run(None)
        report.resolve_items(indexes, hasher)
        if report_path is not None:
            write_json(report_path, report.to_dict())
        return DecontamResult(report)
    output = Path(output)
    files = [output, manifest_path(output)] + ([report_path] if report_path is not None else [])
    with publish_together(*files) as pub:  # clean output, manifest (and report): one set, old or new
        with pub.open(output) as out:
            run(out)
        report.resolve_items(indexes, hasher)
        mpath = _finish_manifest(manifest, report, train, benchmarks, written, output, pub)
        if report_path is not None:
            with pub.open(report_path) as f:
                json.dump(report.to_dict(), f, indent=2, sort_keys=True, ensure_ascii=False)
                f.write("\n")
    return DecontamResult(report, written, mpath)


def _finish_manifest(manifest: Manifest, report: DecontamReport, train: Path, benchmarks: Mapping[str, Any],
                     written: int, output: Path, pub: Any) -> Path:
    manifest.conversations_out = written
    manifest.add_input(train, source="train")
    manifest.config = {"benchmarks": {k: str(v) for k, v in sorted(benchmarks.items())}, **report.to_dict()["settings"]}
    manifest.extra["benchmarks"] = report.benchmarks
    dropped = sum(sum(c.values()) for c in manifest.dropped.values())
    if manifest.records_out != written + dropped:
        raise AssertionError(f"decontaminate invariant broken: {manifest.records_out} valid != {written} written "
                             f"+ {dropped} dropped")
    return manifest.write(output, pub)
